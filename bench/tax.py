"""`make bench-tax`: what the service adds to a read, against the same read straight through pymongo.

The four reads of the API (a record by id, the first page, a page at a random depth,
a feed page at a random position) go through HTTP to gunicorn (keep-alive, sequential)
and through the service's own repository (the same filter, sort, limit and hint, the
same driver settings), interleaved one by one, on BENCH_TAX_VOLUME preloaded records.
The tax is the difference of the medians; the ratio, HTTP over driver.

The floor under the tax is measured in the same run: each service's /healthz (Flask and
the service's hooks, no database) and a WSGI app that answers at once under the same
gunicorn settings (bench/floor.py), interleaved.

BENCH_TAX_PROFILE=<seconds> then samples each service's workers with py-spy while one
read repeats, for that long per read (bench/profile.py), and adds the top functions.

BENCH_TAX_BASELINE=<checkout>[,<checkout>...] also serves the reads from other
checkouts of the service (each with its own .venv) on the same database, interleaved
with the others: before and after in one run. Each is named by its commit.

    .venv/bin/python -m bench.tax        (make bench-tax)

Writes BENCH_RESULTS/tax.json.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import tempfile
from pathlib import Path

from bench import machine, paired, preload, profile, run, servers
from service import cursor, feed
from service.config import Settings
from service.db import make_client, make_repository
from service.repository import PageQuery, utc_now

PAGE = 100


def worker_settings(uri: str, database: str) -> Settings:
    """The settings a worker of the service reads (the cursor key aside, which the driver never uses)."""
    return Settings.from_env({**os.environ, "MONGODB_URI": uri, "MONGODB_DATABASE": database,
                              "CURSOR_SECRET": "-" * 32})


def reads(volume: int, key: cursor.Keys, settle_seconds: int) -> dict:
    """Per read named in BENCH_TAX_READS: (HTTP path of request i, the repository call of request i)."""
    depths = preload.sample_indexes(volume, 20_000, seed=volume)
    oid = lambda i: preload.record_id(depths[i % len(depths)])  # noqa: E731 (a table of small lambdas)
    horizon = feed.horizon(settle_seconds, utc_now())
    scope = PageQuery(PAGE).scope()
    every = {
        "by_id": (lambda i: f"/data/{oid(i)}", lambda repo, i: repo.get(str(oid(i)))),
        "first_page": (lambda i: f"/data?limit={PAGE}", lambda repo, i: list(repo.page(PageQuery(PAGE)))),
        "deep_page": (lambda i: f"/data?limit={PAGE}&cursor={cursor.encode(oid(i), scope, key)}",
                      lambda repo, i: list(repo.page(PageQuery(PAGE, after=oid(i))))),
        "feed_page": (lambda i: f"/data/feed?limit={PAGE}&after={feed.checkpoint(oid(i), None, key)}",
                      lambda repo, i: list(repo.feed(oid(i), horizon, PAGE))),
    }
    return {name: every[name] for name in os.environ.get("BENCH_TAX_READS", ",".join(every)).split(",")}


def say(what: str, row: dict, ways) -> dict:
    """Print p50/p99 of each way in `row`; return `row`."""
    times = ", ".join(f"{way} {row[f'{way}_p50_ms']}/{row[f'{way}_p99_ms']} ms" for way in ways)
    print(f"tax: {what}: {times}", flush=True)
    return row


def floor(services: dict, gunicorn: servers.Service, requests: int) -> dict:
    """p50/p99 of a request that reads nothing: gunicorn alone (bench/floor.py) and each
    service's /healthz, interleaved."""
    targets = {"gunicorn": (gunicorn.port, "/"),
               **{f"{name}_healthz": (service.port, "/healthz") for name, service in services.items()}}
    ways = {}
    for way, (port, path) in targets.items():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        ways[way] = lambda i, c=connection, p=path: paired.get(c, p)
    return say("floor", paired.summarize(paired.interleave(ways, requests)), ways)


def measure(services: dict, settings: Settings, volume: int, key: cursor.Keys, requests: int) -> dict:
    """Each read through every service and through the driver, interleaved; p50/p99, ratio, tax."""
    repo = make_repository(make_client(settings), settings)
    connections = {name: http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
                   for name, service in services.items()}
    results = {}
    for read, (path_of, call) in reads(volume, key, settings.feed_settle_seconds).items():
        ways = {name: (lambda i, c=connection: paired.get(c, path_of(i)))
                for name, connection in connections.items()}
        ways["driver"] = lambda i: call(repo, i)
        row = paired.summarize(paired.interleave(ways, requests))
        for name in services:
            row[f"{name}_tax_p50_ms"] = round(row[f"{name}_p50_ms"] - row["driver_p50_ms"], 3)
            row[f"{name}_ratio_p50"] = round(row[f"{name}_p50_ms"] / row["driver_p50_ms"], 2)
        results[read] = say(read, row, ways)
    return results


def profile_reads(service: servers.Service, reads_of: dict, seconds: int, out: Path) -> dict:
    """The top functions of the service's workers while each read repeats on one connection;
    py-spy's collapsed stacks go to `out` (under BENCH_OUT) for a closer look or a flame graph."""
    out.mkdir(parents=True, exist_ok=True)
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
    found = {}
    for read, (path_of, _) in reads_of.items():
        count = iter(range(10**9))
        collapsed = profile.record(service.process.pid, seconds, out / f"tax-profile-{read}.txt",
                                   lambda: paired.get(connection, path_of(next(count))))
        found[read] = profile.summarize(collapsed)
        print(f"tax: profile of {read}: {json.dumps(found[read]['top_own_percent'][:5])}", flush=True)
    return found


@contextlib.contextmanager
def started(volume: int, baselines: list[Path], secret: str, workdir: Path):
    """Yield (server, services by name, the floor's gunicorn, the workers' settings) on `volume`
    preloaded records: "http" is this checkout, each baseline is named by its commit."""
    with servers.database(os.environ.get("MONGODB_URI")) as (uri, server, _), \
            run.scratch_database(uri) as scratch:
        services = {"http": run.make_service(workdir / "http", uri, scratch, secret)}
        for checkout in baselines:
            services[machine.commit(checkout)] = run.make_service(
                workdir / checkout.name, uri, scratch, secret, source=checkout)
        gunicorn = run.make_service(workdir / "floor", uri, scratch, secret, app="bench.floor:app")
        services["http"].init_db()  # as deployed: the indexes first, then the records
        print(f"tax: loaded {json.dumps(preload.grow(scratch.records, 0, volume))}", flush=True)
        with contextlib.ExitStack() as running:
            for service in [*services.values(), gunicorn]:
                running.enter_context(service)
            yield server, services, gunicorn, worker_settings(uri, scratch.records.database.name)


def main() -> None:
    """Load the records, start the service (and the baselines), measure, write tax.json."""
    servers.stop_on_sigterm()
    volume = int(os.environ.get("BENCH_TAX_VOLUME", "200000"))
    requests = int(os.environ.get("BENCH_TAX_REQUESTS", "2000"))
    baselines = [Path(p).resolve() for p in os.environ.get("BENCH_TAX_BASELINE", "").split(",") if p]
    profile_seconds = int(os.environ.get("BENCH_TAX_PROFILE", "0"))
    raw = Path(os.environ.get("BENCH_OUT", "bench/out"))
    secret = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="bench-tax-") as workdir, \
            started(volume, baselines, secret, Path(workdir)) as (server, services, gunicorn, settings):
        keys = cursor.make_keys(secret)
        floored = floor(services, gunicorn, requests)
        measured = measure(services, settings, volume, keys, requests)
        reads_of = reads(volume, keys, settings.feed_settle_seconds)
        profiled = profile_seconds and {name: profile_reads(service, reads_of, profile_seconds, raw / name)
                                        for name, service in services.items()}
    result = {"kind": "tax", **machine.provenance("bench-tax"), "server": server, "volume": volume,
              "baselines": [name for name in services if name != "http"], "floor": floored, "reads": measured,
              "profile": profiled or None}
    out = Path(os.environ.get("BENCH_RESULTS", "bench/results"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "tax.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"tax: wrote {out / 'tax.json'}")


if __name__ == "__main__":
    main()
