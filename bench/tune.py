"""`make bench-tune`: the server settings compared on one preloaded collection.

For each configuration the service is restarted with those settings, then its
capacity (closed loop, an even mix) and its latency at one fixed open-loop rate
(half the capacity of the production defaults, the same for every configuration)
are measured. Writes BENCH_RESULTS/tuning.json; docs/performance.md reads it.
"""
from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from bench import k6, preload, run, servers

# name -> environment of the service; the first is the production default. The worker
# class is fixed to gthread by the config module: one thread per worker is what a sync
# worker would do with the same processes.
CONFIGS = {
    "2 workers x 4 threads, pool 20 (default)": {},
    "1 worker x 4 threads": {"WEB_CONCURRENCY": "1"},
    "3 workers x 4 threads": {"WEB_CONCURRENCY": "3"},
    "2 workers x 1 thread (sync-like)": {"GUNICORN_THREADS": "1"},
    "4 workers x 1 thread (sync-like)": {"WEB_CONCURRENCY": "4", "GUNICORN_THREADS": "1"},
    "2 workers x 8 threads": {"GUNICORN_THREADS": "8"},
    "2 workers x 4 threads, pool 2": {"MONGODB_MAX_POOL_SIZE": "2"},
}


def measure(bench: run.Bench, volume: int, ops: list[str], rate: int, seconds: int) -> dict:
    """Warm-up, capacity of the even mix (closed loop), then latency at `rate` per operation (open loop)."""
    bench.k6("tune-warmup", volume, mode="closed", vus=bench.plan.capacity_vus, ops=",".join(ops),
             duration=bench.plan.warmup_seconds)
    capacity = bench.mix_capacity(volume, ops)
    path = bench.k6("tune", volume, mode="open", ops=",".join(ops), rate=rate or max(1, int(capacity / 2)),
                    duration=seconds)
    return {"capacity_rps": round(capacity * len(ops), 1), "mix_per_second": round(capacity, 1),
            "open": k6.figures(path, seconds)}


def tune(plan: run.Plan, uri: str, workdir: Path, volume: int, seconds: int) -> dict:
    """Every configuration against the same preloaded collection."""
    secret = secrets.token_hex(16)
    # POST by default; TUNE_OPS names others (by_id, first_page, deep_page).
    ops = os.environ.get("TUNE_OPS", "post").split(",")
    results, rate = [], 0
    with run.scratch_database(uri) as repository:
        preload.grow(repository.records, 0, volume)
        for n, (name, env) in enumerate(CONFIGS.items()):
            service = run.make_service(workdir / str(n), uri, repository, secret, env)
            service.init_db()
            with service:
                bench = run.Bench(plan, service, repository, secret)
                bench.write_samples(volume)
                results.append({"name": name, "env": env, **measure(bench, volume, ops, rate, seconds)})
                rate = rate or max(1, int(results[0]["mix_per_second"] / 2))
            print(f"tune: {name}: {results[-1]['capacity_rps']} req/s", flush=True)
    return {"volume": volume, "ops": ops, "vus": plan.capacity_vus, "rate_per_op": rate, "configs": results}


def main() -> None:
    """Run every configuration and write the result."""
    servers.stop_on_sigterm()
    plan = run.Plan()
    volume = int(os.environ.get("TUNE_VOLUME", "10000"))
    seconds = int(os.environ.get("TUNE_SECONDS", "15"))
    with servers.database(os.environ.get("MONGODB_URI")) as (uri, server), \
            tempfile.TemporaryDirectory(prefix="tune-") as workdir:
        measured = tune(plan, uri, Path(workdir), volume, seconds)
    result = {"kind": "tuning", **run.header(plan, "make bench-tune", server), **measured}
    print(f"tune: wrote {run.write(plan, 'tuning.json', result)}")


if __name__ == "__main__":
    main()
