"""The database fails; the service must answer every request with a clear, bounded error."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import requests

from . import expect, harness

pytestmark = pytest.mark.fault

A_VALID_ID = "000000000000000000000000"
# Slack over the configured MongoDB timeouts: gunicorn queueing, Python, a loaded 2-core machine.
SLACK_S = 2.0

needs_ferretdb = pytest.mark.skipif(
    not harness.FerretDB.available(),
    reason="kills and restarts its own FerretDB: run `scripts/ferretdb.sh install` first",
)


@dataclass
class Outcome:
    """What one request got back and how long it took."""

    status: int | None
    seconds: float
    response: requests.Response | None = None
    error: Exception | None = None


def call(method: str, url: str, timeout: float = 30, **kwargs) -> Outcome:
    """One request on a fresh connection, timed; connection-level errors are outcomes too."""
    start = time.monotonic()
    try:
        response = requests.request(method, url, timeout=timeout, **kwargs)
    except requests.ConnectionError as exc:
        return Outcome(None, time.monotonic() - start, error=exc)
    return Outcome(response.status_code, time.monotonic() - start, response)


def assert_unavailable(outcome: Outcome) -> None:
    """A 503 of the documented shape that tells the client when to retry."""
    expect.error(outcome.response, 503)
    assert int(outcome.response.headers["Retry-After"]) > 0


def database_requests(source: str) -> list[tuple[str, str, dict]]:
    """One request of each kind that needs the database."""
    record = {"source": source, "payload": {"k": "v"}}
    return [
        ("GET", "/readyz", {}),
        ("POST", "/data", {"json": record}),
        ("POST", "/data", {"json": record, "headers": {"Idempotency-Key": "k1"}}),
        ("POST", "/data/batch", {"json": {"records": [record, record]}}),
        ("POST", "/data/batch", {"json": {"records": [record]}, "headers": {"Idempotency-Key": "b1"}}),
        ("GET", "/data", {"params": {"source": source}}),
        ("GET", "/data", {}),
        ("GET", f"/data/{A_VALID_ID}", {}),
    ]


def probe_unavailable(server, source: str, rounds: int, parallel: int) -> list[Outcome]:
    """Send every database request `rounds` times, `parallel` at once; all must be 503."""
    calls = database_requests(source) * rounds
    with ThreadPoolExecutor(parallel) as pool:
        outcomes = list(pool.map(lambda c: call(c[0], server.url + c[1], **c[2]), calls))
    for outcome in outcomes:
        assert_unavailable(outcome)
    return outcomes


def test_database_down_at_start_up(start_service):
    """No server to select: requests wait for one up to their budget (a failover would end
    within it), /readyz only up to MONGODB_TIMEOUT_MS; then 503."""
    timeout_ms, budget_ms = 500, 1000
    closed_port = harness.free_port()
    server = start_service(MONGODB_URI=f"mongodb://127.0.0.1:{closed_port}/",
                           MONGODB_TIMEOUT_MS=str(timeout_ms), MONGODB_REQUEST_TIMEOUT_MS=str(budget_ms))
    healthz = call("GET", f"{server.url}/healthz")
    assert healthz.status == 200 and healthz.seconds < 0.5

    outcomes = probe_unavailable(server, "down-at-start", rounds=3, parallel=4)
    slowest = max(o.seconds for o in outcomes)
    readyz = call("GET", f"{server.url}/readyz")
    harness.report("database down at start-up", requests=len(outcomes), all_503=True,
                   budget_ms=budget_ms, max_latency_s=f"{slowest:.3f}", readyz_s=f"{readyz.seconds:.3f}")
    assert slowest < harness.request_bound_s(budget_ms, timeout_ms)
    assert readyz.status == 503 and readyz.seconds < timeout_ms / 1000 + SLACK_S
    assert call("GET", f"{server.url}/healthz").status == 200


def test_unresponsive_database(start_service):
    timeout_ms, budget_ms = 500, 1000
    with harness.MuteDatabase() as mute:
        server = start_service(MONGODB_URI=mute.uri, MONGODB_TIMEOUT_MS=str(timeout_ms),
                               MONGODB_REQUEST_TIMEOUT_MS=str(budget_ms))
        outcomes = probe_unavailable(server, "mute", rounds=2, parallel=8)
        assert call("GET", f"{server.url}/healthz").status == 200
    slowest = max(o.seconds for o in outcomes)
    bound = harness.request_bound_s(budget_ms, timeout_ms)
    harness.report("database accepts connections and never answers", requests=len(outcomes),
                   all_503=True, max_latency_s=f"{slowest:.3f}", bound_s=bound)
    assert slowest < bound


@needs_ferretdb
def test_database_that_hangs_mid_operation(start_service):
    """Connections already pooled go silent: the request's database budget must end every request."""
    timeout_ms, budget_ms = 500, 1000
    database = harness.FerretDB().start()
    try:
        with harness.FaultProxy(database.port) as proxy:
            server = start_service(init_db=True, MONGODB_URI=proxy.uri, MONGODB_TIMEOUT_MS=str(timeout_ms),
                                   MONGODB_REQUEST_TIMEOUT_MS=str(budget_ms))
            source = harness.unique("hang")
            for _ in range(8):  # warm the pools of both workers
                created = call("POST", f"{server.url}/data", json={"source": source, "payload": {}})
                assert created.status == 201
            proxy.silence()
            outcomes = probe_unavailable(server, source, rounds=2, parallel=8)
    finally:
        database.stop()
    slowest = max(o.seconds for o in outcomes)
    bound = harness.request_bound_s(budget_ms, timeout_ms)
    harness.report("database hangs mid-operation", requests=len(outcomes), all_503=True,
                   max_latency_s=f"{slowest:.3f}", bound_s=bound)
    assert slowest < bound


class WriteLoad:
    """POSTs numbered 0..total-1 from several threads; even numbers carry an Idempotency-Key."""

    def __init__(self, url: str, source: str, total: int):
        self.url, self.source, self.total = url, source, total
        self.outcomes: dict[int, Outcome] = {}
        self._next = iter(range(total))
        self._lock = threading.Lock()
        self.progress = threading.Semaphore(0)

    def body(self, n: int) -> dict:
        return {"source": self.source, "payload": {"n": n, "text": f"écrit n°{n} 𝄞", "big": 2**62 + n},
                "tags": [f"n{n}"], "timestamp": "2024-02-29T23:30:00.125+05:30"}

    def send(self, session: requests.Session, n: int) -> Outcome:
        headers = {"Idempotency-Key": f"write-{n}"} if n % 2 == 0 else {}
        start = time.monotonic()
        try:
            response = session.post(f"{self.url}/data", json=self.body(n), headers=headers, timeout=30)
        except requests.ConnectionError as exc:
            return Outcome(None, time.monotonic() - start, error=exc)
        return Outcome(response.status_code, time.monotonic() - start, response)

    def worker(self) -> None:
        with requests.Session() as session:
            while True:
                with self._lock:
                    n = next(self._next, None)
                if n is None:
                    return
                self.outcomes[n] = self.send(session, n)
                self.progress.release()

    def run(self, threads: int, midway) -> None:
        """Run the load; call `midway()` once a third of the writes have been answered."""
        pool = [threading.Thread(target=self.worker) for _ in range(threads)]
        for thread in pool:
            thread.start()
        for _ in range(self.total // 3):
            assert self.progress.acquire(timeout=60), "the write load stalled"
        midway()
        for thread in pool:
            thread.join(300)
        assert len(self.outcomes) == self.total


@needs_ferretdb
def test_database_killed_and_restarted_under_write_load(start_service):
    database = harness.FerretDB().start()
    try:
        server = start_service(init_db=True, MONGODB_URI=database.uri)
        load = WriteLoad(server.url, harness.unique("crash"), total=2000)
        downtime = {}

        def crash_and_restart():
            started = time.monotonic()
            database.kill()
            time.sleep(3)  # longer than the 2 s server selection timeout: some writes must fail
            database.start()
            downtime["s"] = time.monotonic() - started

        load.run(threads=8, midway=crash_and_restart)
        # The service recovers by itself: the same processes, no restart.
        assert harness.wait_until(lambda: harness.answers(f"{server.url}/readyz"), 30)
        assert server.process.poll() is None
        check_write_load(server, load, downtime["s"])
    finally:
        database.stop()


def check_write_load(server, load: WriteLoad, downtime_s: float) -> None:
    """Acknowledged writes are all there, failures were all 503, keyed retries store once."""
    acknowledged = {n: o.response.json() for n, o in load.outcomes.items() if o.status in (200, 201)}
    failed = {n: o for n, o in load.outcomes.items() if n not in acknowledged}
    for outcome in failed.values():
        assert outcome.status == 503, (outcome.status, outcome.error)
        assert_unavailable(outcome)
    client = harness.Client(server.url)
    api = client.session
    for n, record in acknowledged.items():
        stored = api.get(f"{server.url}/data/{record['id']}", timeout=30)
        assert stored.status_code == 200 and stored.json() == record, n
        assert record["payload"]["n"] == n
    found = {item["payload"]["n"] for item in client.walk(limit=1000, source=load.source)}
    assert set(acknowledged) <= found
    retried = retry_keyed_failures(api, load, failed)
    after_retries = [item["payload"]["n"] for item in client.walk(limit=1000, source=load.source)]
    keyed_after = sorted(n for n in after_retries if n % 2 == 0)
    harness.report(
        "database killed (SIGKILL) and restarted under write load",
        attempted=load.total, acknowledged=len(acknowledged), failed_503=len(failed),
        found_afterwards=len(found), acknowledged_missing=len(set(acknowledged) - found),
        stored_without_ack=len(found - set(acknowledged)), keyed_retries=len(retried),
        downtime_s=f"{downtime_s:.2f}",
        max_latency_s=f"{max(o.seconds for o in load.outcomes.values()):.3f}",
    )
    # Every keyed write is stored exactly once after its retries, whatever the crash did.
    assert keyed_after == list(range(0, load.total, 2))


def retry_keyed_failures(api: requests.Session, load: WriteLoad, failed: dict) -> list[int]:
    """Retry each failed keyed write with its key until it is acknowledged."""
    retried = [n for n in failed if n % 2 == 0]
    for n in retried:
        outcome = load.send(api, n)
        assert outcome.status in (200, 201), (n, outcome.status)
        assert outcome.response.json()["payload"]["n"] == n
    return retried
