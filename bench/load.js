// k6 load for the benchmark harness (bench/run.py writes the samples and reads the results).
//
// MODE=open   one constant-arrival-rate scenario per operation in OPS, RATE requests/s each:
//             requests start on schedule whether or not earlier ones have finished, so a slow
//             server shows up as latency (and dropped_iterations), never as a politely lower rate.
// MODE=closed VUS virtual users each running every operation of OPS in turn, as fast as the
//             server answers: the capacity of an even mix (used only to choose RATE).
// MODE=batch  VUS virtual users POSTing batches of BATCH_SIZE records to /data/batch.
import http from 'k6/http';
import { check } from 'k6';
import { SharedArray } from 'k6/data';

const BASE_URL = __ENV.BASE_URL;
const OPS = (__ENV.OPS || 'post,by_id,first_page,deep_page,walk').split(',').filter((op) => op);
const DURATION = `${Number(__ENV.DURATION || 30)}s`;
const RATE = Number(__ENV.RATE || 50);
const VUS = Number(__ENV.VUS || 8);
const BATCH_SIZE = Number(__ENV.BATCH_SIZE || 1000);
const PAGE_LIMIT = Number(__ENV.PAGE_LIMIT || 100);
const SAMPLES = JSON.parse(open(__ENV.SAMPLES));
const IDS = new SharedArray('ids', () => SAMPLES.ids);
const CURSORS = new SharedArray('cursors', () => SAMPLES.cursors);
const BODY = JSON.stringify(SAMPLES.post_body);
const BATCH_BODY = JSON.stringify({ records: Array(BATCH_SIZE).fill(SAMPLES.post_body) });
const JSON_HEADERS = { headers: { 'Content-Type': 'application/json' } };
// Every sample carries its operation in the `op` tag, whatever the scenario that made it.
const PARAMS = { timeout: __ENV.REQUEST_TIMEOUT || '10s' };

function pick(items) {
  return items[Math.floor(Math.random() * items.length)];
}

function expect(response, status) {
  check(response, { [`status ${status}`]: (r) => r.status === status });
}

export function post() {
  expect(http.post(`${BASE_URL}/data`, BODY, { ...JSON_HEADERS, ...PARAMS, tags: { op: 'post' } }), 201);
}

export function by_id() {
  expect(http.get(`${BASE_URL}/data/${pick(IDS)}`, { ...PARAMS, tags: { op: 'by_id' } }), 200);
}

export function first_page() {
  expect(http.get(`${BASE_URL}/data?limit=${PAGE_LIMIT}`, { ...PARAMS, tags: { op: 'first_page' } }), 200);
}

export function deep_page() {
  const url = `${BASE_URL}/data?limit=${PAGE_LIMIT}&cursor=${pick(CURSORS)}`;
  expect(http.get(url, { ...PARAMS, tags: { op: 'deep_page' } }), 200);
}

// A walk, what a client reading the collection does: each VU asks for the page after the one
// it read last (its next_cursor), and starts again at a random depth after WALK_PAGES pages
// or at the end. Iterations go to whichever VU is free, so several walks advance at once.
const WALK_PAGES = Number(__ENV.WALK_PAGES || 10);
let walkCursor = null;
let walkLeft = 0;

export function walk() {
  if (!walkCursor || walkLeft <= 0) {
    walkCursor = pick(CURSORS);
    walkLeft = WALK_PAGES;
  }
  const url = `${BASE_URL}/data?limit=${PAGE_LIMIT}&cursor=${walkCursor}`;
  const response = http.get(url, { ...PARAMS, responseType: 'text', tags: { op: 'walk' } });
  expect(response, 200);
  walkCursor = response.status === 200 ? response.json('next_cursor') : null;
  walkLeft -= 1;
}

export function batch() {
  expect(http.post(`${BASE_URL}/data/batch`, BATCH_BODY, { ...JSON_HEADERS, ...PARAMS, tags: { op: 'batch' } }), 201);
}

const OPERATIONS = { post, by_id, first_page, deep_page, walk };

export function mix() {
  OPS.forEach((op) => OPERATIONS[op]());
}

function openScenarios() {
  const scenarios = {};
  OPS.forEach((op) => {
    scenarios[op] = {
      executor: 'constant-arrival-rate',
      exec: op,
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: Math.max(4, Math.ceil(RATE / 10)),
      // Enough for RATE requests of up to 2 s in flight at once; beyond that the server is
      // past saturation and the shortfall is counted in dropped_iterations.
      maxVUs: Math.max(20, RATE * 2),
    };
  });
  return scenarios;
}

function scenarios() {
  const mode = __ENV.MODE || 'open';
  if (mode === 'closed') {
    return { mix: { executor: 'constant-vus', exec: 'mix', vus: VUS, duration: DURATION } };
  }
  if (mode === 'batch') {
    return { batch: { executor: 'constant-vus', exec: 'batch', vus: VUS, duration: DURATION } };
  }
  return openScenarios();
}

export const options = {
  scenarios: scenarios(),
  discardResponseBodies: true,
  summaryTrendStats: ['med', 'p(99)', 'max', 'count'],
};

// The harness reads the raw samples; the end-of-test summary would only clutter its log.
export function handleSummary() {
  return {};
}
