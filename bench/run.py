"""`make bench`: latency of every API operation as the collection grows (see bench/README.md).

For each volume: bulk-load to it, probe each operation alone, then drive each operation
with open-loop load (warm-up, then BENCH_RUNS runs; medians reported) and time a keyset
page against a `skip` page at the same depths. Each operation's arrival rate is chosen
once, at the first volume, as half of its measured capacity, and held for every volume.
Writes BENCH_RESULTS/volumes.json; with BENCH_ENGINES naming more than the single-node
FerretDB, the same plan on each engine in turn, side by side in BENCH_RESULTS/sharded.json.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bson import ObjectId
from pymongo import DESCENDING, MongoClient

from bench import buffers, k6, machine, preload, servers
from service import cursor
from service.config import Settings
from service.repository import ID_INDEX, PageQuery, RecordRepository

# Reads first: POSTs grow the collection, which must be the stated volume when it is read.
ALL_OPS = ("by_id", "first_page", "deep_page", "walk", "post")
# A walk sends the deep page's request, so with it the walk runs at its rate: their latencies compare.
SAME_REQUEST = {"walk": "deep_page"}
PAGE_LIMIT = 100
SAMPLE_SIZE = 20_000


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


@dataclass
class Plan:
    """What a run does; every field is an environment variable BENCH_<FIELD> (README)."""

    volumes: list[int] = field(default_factory=lambda: [
        int(v) for v in _env_list("BENCH_VOLUMES", "10000,100000,1000000,10000000")])
    ops: list[str] = field(default_factory=lambda: _env_list("BENCH_OPS", ",".join(ALL_OPS)))
    engines: list[str] = field(default_factory=lambda: _env_list("BENCH_ENGINES", "single"))
    runs: int = int(os.environ.get("BENCH_RUNS", "3"))
    run_seconds: int = int(os.environ.get("BENCH_RUN_SECONDS", "30"))
    warmup_seconds: int = int(os.environ.get("BENCH_WARMUP_SECONDS", "10"))
    probe_seconds: int = int(os.environ.get("BENCH_PROBE_SECONDS", "5"))
    probe_limit_ms: float = float(os.environ.get("BENCH_PROBE_LIMIT_MS", "100"))
    capacity_seconds: int = int(os.environ.get("BENCH_CAPACITY_SECONDS", "15"))
    capacity_vus: int = int(os.environ.get("BENCH_CAPACITY_VUS", "8"))
    rate: int = int(os.environ.get("BENCH_RATE", "0"))  # per operation; 0 = half its capacity
    bulk_seconds: int = int(os.environ.get("BENCH_BULK_SECONDS", "10"))
    contrast_samples: int = int(os.environ.get("BENCH_CONTRAST_SAMPLES", "5"))
    contrast_budget_s: float = float(os.environ.get("BENCH_CONTRAST_BUDGET_S", "30"))
    explain_samples: int = int(os.environ.get("BENCH_EXPLAIN_SAMPLES", "20"))
    out: Path = Path(os.environ.get("BENCH_OUT", "bench/out"))
    results: Path = Path(os.environ.get("BENCH_RESULTS", "bench/results"))


class Bench:
    """One benchmark: a server, the service in front of it, and what was measured so far."""

    def __init__(self, plan: Plan, service: servers.Service | None, repository: RecordRepository, secret: str,
                 url: str | None = None, postgres: buffers.Postgres | None = None):
        self.plan = plan
        self.service = service
        self.url = url or service.url  # where k6 sends requests: the service, or nginx in front of it
        self.repository = repository
        self.postgres = postgres  # the PostgreSQL under FerretDB, when the benchmark started it
        self.key = cursor.make_keys(secret)
        self.candidates = list(plan.ops)
        self.rates: dict[str, int] = {}
        self.capacity: dict = {}
        self.preloaded = 0  # every benchmark starts on a database of its own

    def k6(self, label: str, volume: int, **env) -> Path:
        """A k6 run against the service with this volume's samples."""
        out = self.plan.out / f"{volume}-{label}.csv.gz"
        return k6.run(out, self.url, self.plan.out / f"samples-{volume}.json", **env)

    def write_samples(self, volume: int) -> None:
        """Ids drawn uniformly over the volume, and cursors at uniformly drawn depths."""
        ids = [str(preload.record_id(i)) for i in preload.sample_indexes(volume, SAMPLE_SIZE, seed=volume)]
        scope = PageQuery(limit=PAGE_LIMIT).scope()
        deep = preload.sample_indexes(volume - 1, SAMPLE_SIZE, seed=volume + 1)
        cursors = [cursor.encode(preload.record_id(i + 1), scope, self.key) for i in deep]
        k6.write_samples(self.plan.out / f"samples-{volume}.json", ids, cursors, preload.payload_body())

    def probe(self, volume: int) -> dict:
        """Each candidate operation alone, one at a time: its unloaded median in ms."""
        path = self.k6("probe", volume, mode="closed", vus=1, ops=",".join(self.candidates),
                       duration=self.plan.probe_seconds)
        return {op: figures["p50_ms"] for op, figures in k6.figures(path, self.plan.probe_seconds).items()}

    def exclude_slow(self, probe: dict) -> dict:
        """Drop operations slower alone than the limit, here and at every larger volume."""
        excluded = {op: f"{ms} ms alone > {self.plan.probe_limit_ms:g} ms"
                    for op, ms in probe.items() if ms is None or ms > self.plan.probe_limit_ms}
        self.candidates = [op for op in self.candidates if op not in excluded]
        return excluded

    def mix_capacity(self, volume: int, ops: list[str]) -> float:
        """Closed loop: how many times per second the VUs get through every operation of `ops` in turn."""
        seconds = self.plan.capacity_seconds
        path = self.k6(f"capacity-{'-'.join(ops)}", volume, mode="closed", vus=self.plan.capacity_vus,
                       ops=",".join(ops), duration=seconds)
        return min(figures["requests"] for figures in k6.figures(path, seconds).values()) / seconds

    def choose_rates(self, volume: int) -> None:
        """Per operation, half of its capacity alone (or BENCH_RATE); kept for every volume."""
        for op in sorted(self.candidates, key=lambda op: op in SAME_REQUEST):
            if SAME_REQUEST.get(op) in self.rates:
                self.rates[op] = self.rates[SAME_REQUEST[op]]
                continue
            alone = self.mix_capacity(volume, [op])
            self.capacity[op] = round(alone, 1)
            self.rates[op] = self.plan.rate or max(1, int(alone / 2))
        self.forget_posts()

    def forget_posts(self) -> None:
        """Delete what earlier load POSTed, so that reads see the stated volume."""
        self.repository.records.delete_many({"source": preload.payload_body()["source"]})

    def drive(self, volume: int, op: str) -> dict:
        """One operation alone at its rate: warm-up, then the runs; the median of each figure."""
        rate, seconds = self.rates[op], self.plan.run_seconds
        self.k6(f"warmup-{op}", volume, mode="open", ops=op, rate=rate, duration=self.plan.warmup_seconds)
        runs = [k6.figures(self.k6(f"run{n}-{op}", volume, mode="open", ops=op, rate=rate, duration=seconds),
                           seconds).get(op) for n in range(1, self.plan.runs + 1)]
        return _median_of_runs(runs)

    def drive_counted(self, volume: int, op: str) -> dict:
        """drive(), with the table's heap and index blocks hit and read meanwhile, when known."""
        if not self.postgres:
            return self.drive(volume, op)
        time.sleep(buffers.PGSTAT_IDLE_SECONDS)  # earlier counters flushed before the first reading
        before = self.postgres.counters()
        figures = self.drive(volume, op)
        time.sleep(buffers.PGSTAT_IDLE_SECONDS)
        return {**figures, "blocks": buffers.blocks(before, self.postgres.counters())}

    def deep_reads(self, volume: int) -> dict | None:
        """What deep pages at uniformly drawn depths read, from shared_buffers or not (bench/buffers.py)."""
        if not self.postgres or not self.plan.explain_samples:
            return None
        depths = preload.sample_indexes(volume - 1, self.plan.explain_samples, seed=volume + 2)
        commands = buffers.deep_page_commands(
            self.service.env["MONGODB_URI"], self.repository.records.database.name, PAGE_LIMIT,
            preload.record_id(0), [preload.record_id(i + 1) for i in depths])
        return buffers.measure(self.postgres, commands, [volume - 1 - i for i in depths])

    def contrast(self, volume: int) -> dict:
        """A keyset page (the API's query) against an offset page at the same depths, in ms."""
        depths = sorted(preload.sample_indexes(volume - PAGE_LIMIT, self.plan.contrast_samples, seed=7))
        keyset, offset = [], []
        deadline = time.monotonic() + self.plan.contrast_budget_s
        for depth in depths:
            if time.monotonic() > deadline:
                break
            after = preload.record_id(volume - 1 - depth)
            query = PageQuery(limit=PAGE_LIMIT, after=after)
            keyset.append(_timed(lambda: list(self.repository.page(query))))
            offset.append(_timed(lambda: self._skip_page(depth)))
        measured = depths[: len(keyset)]
        return {"depths": measured, "keyset_ms": keyset, "skip_ms": offset,
                "keyset_median_ms": _median(keyset), "skip_median_ms": _median(offset)}

    def _skip_page(self, depth: int) -> list:
        records = self.repository.records
        page = records.find({}, sort=[("_id", DESCENDING)], skip=depth, limit=PAGE_LIMIT + 1)
        return list(page.hint(ID_INDEX))

    def prepare(self, volume: int) -> dict:
        """Grow to the volume, then probe each operation and set aside the slow ones."""
        self.forget_posts()
        loaded = preload.grow(self.repository.records, self.preloaded, volume)
        self.preloaded = max(self.preloaded, volume)
        self.write_samples(volume)
        probe = self.probe(volume)
        excluded = self.exclude_slow(probe)
        return {"preload": loaded, "probe_p50_ms": probe, "excluded": excluded}

    def level(self, volume: int) -> dict:
        """Everything measured at one volume."""
        probed_deep = "deep_page" in self.candidates
        prepared = self.prepare(volume)
        contrast = self.contrast(volume) if probed_deep else None
        deep_reads = self.deep_reads(volume)
        if not self.rates:
            self.choose_rates(volume)
        ops = {op: self.drive_counted(volume, op) for op in self.candidates}
        return {"volume": volume, **prepared, "rates": dict(self.rates), "ops": ops, "contrast": contrast,
                "deep_reads": deep_reads}

    def bulk(self, volume: int) -> dict:
        """Records per second through POST /data/batch against single POSTs, both closed-loop."""
        seconds, size = self.plan.bulk_seconds, 1000
        batch = k6.figures(self.k6("batch", volume, mode="batch", vus=2, batch_size=size, duration=seconds),
                           seconds)["batch"]
        single = k6.figures(self.k6("single", volume, mode="closed", vus=self.plan.capacity_vus, ops="post",
                                    duration=seconds), seconds)["post"]
        batch_rate = batch["requests"] * size / seconds
        single_rate = single["requests"] / seconds
        return {"batch_size": size, "batch_records_per_second": round(batch_rate),
                "batch_p99_ms": batch["p99_ms"], "batch_failed": batch["failed"],
                "single_records_per_second": round(single_rate), "single_failed": single["failed"],
                "speedup": round(batch_rate / single_rate, 1) if single_rate else None}


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return round((time.perf_counter() - start) * 1000, 2)


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 2) if values else None


def _median_of_runs(runs: list[dict | None]) -> dict:
    """Per figure, the median over runs; counts of failures and drops are summed."""
    runs = [run for run in runs if run]
    merged = {key: _median([run[key] for run in runs])
              for key in ("p50_ms", "p99_ms", "max_ms", "throughput_rps")}
    merged.update(failed=sum(run["failed"] for run in runs), dropped=sum(run["dropped"] for run in runs),
                  requests=sum(run["requests"] for run in runs), runs=runs)
    return merged


def ratios(levels: list[dict]) -> dict:
    """p99 at the largest volume over p99 at the smallest, for operations measured at both."""
    first, last = levels[0]["ops"], levels[-1]["ops"]
    return {op: round(last[op]["p99_ms"] / first[op]["p99_ms"], 2)
            for op in first if op in last and first[op]["p99_ms"] and last[op]["p99_ms"]}


def service_settings() -> dict:
    """The production settings the service ran with, parsed from the environment as the service does.

    Only the server address and the cursor key are the benchmark's own (make_service sets
    them); neither is reported.
    """
    settings = Settings.from_env({**os.environ, "MONGODB_URI": "mongodb://benchmark",
                                  "CURSOR_SECRET": "-" * 32})
    return {"worker_class": "gthread", "web_concurrency": settings.web_concurrency,
            "worker_connections": settings.worker_connections,
            "mongodb_max_pool_size": settings.max_pool_size,
            "mongodb_write_concern": settings.write_concern,
            "page_limit": PAGE_LIMIT, "record_bytes": len(json.dumps(preload.payload_body()))}


@contextlib.contextmanager
def scratch_database(uri: str, prepare=None):
    """A repository over a database of its own (`prepare`d by its engine first), dropped afterwards."""
    name = f"bench_{ObjectId()}"
    if prepare:
        prepare(name)
    client = MongoClient(uri, tz_aware=True)
    try:
        yield RecordRepository(client[name]["records"], client[name]["records.idempotency"], 86400)
    finally:
        client.drop_database(name)
        client.close()


def make_service(workdir: Path, uri: str, repository: RecordRepository, secret: str,
                 env: dict | None = None, source: Path = servers.REPO,
                 app: str = "service:create_app()") -> servers.Service:
    """The service (run from the `source` checkout) in front of the repository's database;
    `env` overrides its settings; `app`, another WSGI app under the same gunicorn settings."""
    return servers.Service(workdir, {"MONGODB_URI": uri, "MONGODB_DATABASE": repository.records.database.name,
                                     "CURSOR_SECRET": secret, **(env or {})}, source, app)


@contextlib.contextmanager
def session(plan: Plan, uri: str, workdir: Path, prepare=None, pg_host: str | None = None):
    """A Bench on a scratch database (`prepare`d by its engine) behind a started service
    (`pg_host`: FerretDB's PostgreSQL)."""
    secret = secrets.token_hex(16)
    with scratch_database(uri, prepare) as repository:
        service = make_service(workdir, uri, repository, secret)
        service.init_db()
        postgres = buffers.Postgres(pg_host, repository.records.database.name) if pg_host else None
        with service:
            yield Bench(plan, service, repository, secret, postgres=postgres)


def benchmark(plan: Plan, engine: servers.Engine, workdir: Path, save=None) -> dict:
    """Measure every volume, then where the records are (sharded engine), then bulk ingest;
    `save` gets what is measured after each volume."""
    with session(plan, engine.uri, workdir, engine.prepare, engine.pg_host) as bench:
        levels = []
        for volume in plan.volumes:
            levels.append(bench.level(volume))
            print(f"bench: {engine.server}: {volume} records: {json.dumps(_brief(levels[-1]))}", flush=True)
            # A long run stopped midway keeps the volumes it measured.
            if save:
                save({"complete": False, **_measured(plan, bench, levels)})
        bench.forget_posts()
        placement = engine.placement(bench.repository.records.database.name)
        bulk = bench.bulk(plan.volumes[-1])
    return {"complete": True, **_measured(plan, bench, levels), "bulk": bulk, "records_per_shard": placement}


def _measured(plan: Plan, bench: Bench, levels: list[dict]) -> dict:
    return {"capacity_alone_per_second": bench.capacity, "levels": levels,
            "ratio_volumes": [plan.volumes[0], levels[-1]["volume"]],
            "ratios_p99_last_over_first": ratios(levels)}


def _brief(level: dict) -> dict:
    return {op: (figures["p50_ms"], figures["p99_ms"]) for op, figures in level["ops"].items()}


def write(plan: Plan, name: str, result: dict) -> Path:
    """Write a result file under BENCH_RESULTS."""
    plan.results.mkdir(parents=True, exist_ok=True)
    path = plan.results / name
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def header(plan: Plan, target: str, server: str) -> dict:
    """What every result file says about how and where it was measured."""
    return {**machine.provenance(target, k6.K6), "server": server,
            "service": service_settings(),
            "plan": {k: v for k, v in asdict(plan).items() if not isinstance(v, Path)}}


def on_engine(plan: Plan, name: str, save=None) -> dict:
    """Start an engine, run the whole plan on it (`save` gets each volume's partial result), stop it."""
    started, start_load = time.monotonic(), [round(v, 2) for v in os.getloadavg()]
    with servers.engine(os.environ.get("MONGODB_URI"), name) as engine, \
            tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        ready = round(time.monotonic() - started, 1)

        def described(measured: dict) -> dict:
            return {"server": engine.server, "load_average_at_start": start_load,
                    "install_and_start_seconds": ready, "wall_seconds": round(time.monotonic() - started),
                    **measured}

        partial = save and (lambda part: save(described(part)))
        return described(benchmark(plan, engine, Path(workdir), partial))


def main() -> None:
    """Run the whole benchmark on each engine in turn and write its JSON result."""
    servers.stop_on_sigterm()
    plan = Plan()
    started = time.monotonic()
    if plan.engines == ["single"]:  # the default: the file every other tool reads
        name = result_name(plan.ops)

        def save(measured: dict) -> Path:
            return write(plan, name, {"kind": "volumes", **header(plan, "bench", measured["server"]),
                                      **measured})

        path = save(on_engine(plan, "single", save))
    else:
        engines = {name: on_engine(plan, name) for name in plan.engines}
        described = "; ".join(f"{name}: {measured['server']}" for name, measured in engines.items())
        path = write(plan, "sharded.json", {"kind": "engines", **header(plan, "bench", described),
                                            "wall_seconds": round(time.monotonic() - started),
                                            "engines": engines})
    print(f"bench: wrote {path} in {round(time.monotonic() - started)} s")


def result_name(ops: list[str]) -> str:
    """volumes.json for every operation; a run of some only is named after them and replaces nothing else."""
    return "volumes.json" if set(ops) == set(ALL_OPS) else f"volumes-{'-'.join(ops)}.json"


if __name__ == "__main__":
    main()
