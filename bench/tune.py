"""`make bench-tune`: the server settings compared on one preloaded collection.

For each configuration (TUNE_CONFIGS, default all) the service is restarted with those
settings, behind nginx for the deployed pair, or from another checkout (TUNE_BASELINE,
with its own .venv: an earlier commit's worker model in the same run); then its
capacity (closed loop, an even mix) is measured, in TUNE_ROUNDS interleaved rounds
(default 3; the median counts), and in the last round its latency at one fixed
open-loop rate (half the median capacity of the production defaults, the same for
every configuration). Writes BENCH_RESULTS/tuning.json; docs/performance.md reads it.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench import k6, machine, preload, run, servers


@dataclass(frozen=True)
class Config:
    """How the service runs: its environment, nginx in front or not, and from which checkout."""

    name: str
    env: dict = field(default_factory=dict)
    edge: bool = False
    baseline: bool = False


# The first is the production default (gunicorn.conf.py); thread counts are set through
# gunicorn's own GUNICORN_CMD_ARGS.
THREADS = "--threads "
ALL = {
    "default": Config("2 workers x 8 threads, pool 20 (default)"),
    "one-worker": Config("1 worker x 8 threads", {"WEB_CONCURRENCY": "1"}),
    "three-workers": Config("3 workers x 8 threads", {"WEB_CONCURRENCY": "3"}),
    "pool-2": Config("2 workers x 8 threads, pool 2", {"MONGODB_MAX_POOL_SIZE": "2"}),
    "four-threads": Config("2 workers x 4 threads", {"GUNICORN_CMD_ARGS": THREADS + "4"}),
    "one-thread": Config("2 workers x 1 thread (sync-like)", {"GUNICORN_CMD_ARGS": THREADS + "1"}),
    "edge": Config("nginx + 2 workers x 8 threads (as deployed)", edge=True),
    "baseline": Config("TUNE_BASELINE, its own defaults", baseline=True),
}
DEFAULT = "default,one-worker,three-workers,pool-2,four-threads,one-thread,edge"
CONFIGS = {ALL[key].name: ALL[key] for key in os.environ.get("TUNE_CONFIGS", DEFAULT).split(",")}


@contextlib.contextmanager
def serving(config: Config, workdir: Path, uri: str, repository, secret: str):
    """The service as `config` says, started; yield the URL k6 sends to."""
    source = Path(os.environ["TUNE_BASELINE"]).resolve() if config.baseline else servers.REPO
    service = run.make_service(workdir, uri, repository, secret, config.env, source)
    service.init_db()
    with service, contextlib.ExitStack() as front:
        edge = config.edge and front.enter_context(servers.Edge(workdir / "edge", service.port))
        yield edge.url if edge else service.url


def capacity(bench: run.Bench, volume: int, ops: list[str]) -> float:
    """Warm-up, then the capacity of the even mix (closed loop), in complete mixes per second."""
    bench.k6("tune-warmup", volume, mode="closed", vus=bench.plan.capacity_vus, ops=",".join(ops),
             duration=bench.plan.warmup_seconds)
    return bench.mix_capacity(volume, ops)


def latency(bench: run.Bench, volume: int, ops: list[str], rate: int, seconds: int) -> dict:
    """Open loop at `rate` requests/s per operation: p50/p99 and failures."""
    path = bench.k6("tune", volume, mode="open", ops=",".join(ops), rate=rate, duration=seconds)
    return k6.figures(path, seconds)


def open_rate(mixes: dict[str, list[float]]) -> int:
    """Half the default configuration's (the first one's) median capacity, per operation."""
    return max(1, int(statistics.median(mixes[next(iter(CONFIGS))]) / 2))


def tune(plan: run.Plan, uri: str, workdir: Path, volume: int, seconds: int, rounds: int) -> dict:
    """Every configuration against the same preloaded collection, in `rounds` interleaved rounds.

    A shared machine drifts over minutes: interleaving spreads the drift over every
    configuration, and each one's median round is what the comparison uses. Latency is
    measured once per configuration, in the last round, at half the default's median capacity.
    """
    secret = secrets.token_hex(16)
    # POST by default; TUNE_OPS names others (by_id, first_page, deep_page).
    ops = os.environ.get("TUNE_OPS", "post").split(",")
    mixes: dict[str, list[float]] = {name: [] for name in CONFIGS}
    opened: dict[str, dict] = {}
    with run.scratch_database(uri) as repository:
        preload.grow(repository.records, 0, volume)
        for round_ in range(rounds):
            for n, (name, config) in enumerate(CONFIGS.items()):
                with serving(config, workdir / f"{round_}-{n}", uri, repository, secret) as url:
                    bench = run.Bench(plan, None, repository, secret, url)
                    bench.write_samples(volume)
                    mixes[name].append(capacity(bench, volume, ops))
                    if round_ == rounds - 1:
                        opened[name] = latency(bench, volume, ops, open_rate(mixes), seconds)
                    bench.forget_posts()  # every configuration starts from the same volume
                print(f"tune: round {round_ + 1}/{rounds}: {name}: {mixes[name][-1] * len(ops):.1f} req/s",
                      flush=True)
    configs = [{"name": name, "env": config.env, "edge": config.edge,
                "source": config.baseline and machine.commit(Path(os.environ["TUNE_BASELINE"])),
                "capacity_rps": round(statistics.median(mixes[name]) * len(ops), 1),
                "capacity_rps_rounds": [round(m * len(ops), 1) for m in mixes[name]],
                "mix_per_second": round(statistics.median(mixes[name]), 1), "open": opened[name]}
               for name, config in CONFIGS.items()]
    return {"volume": volume, "ops": ops, "vus": plan.capacity_vus, "rounds": rounds,
            "rate_per_op": open_rate(mixes), "configs": configs}


def main() -> None:
    """Run every configuration and write the result."""
    servers.stop_on_sigterm()
    plan = run.Plan()
    volume = int(os.environ.get("TUNE_VOLUME", "10000"))
    seconds = int(os.environ.get("TUNE_SECONDS", "15"))
    rounds = int(os.environ.get("TUNE_ROUNDS", "3"))
    with servers.database(os.environ.get("MONGODB_URI")) as (uri, server, _), \
            tempfile.TemporaryDirectory(prefix="tune-") as workdir:
        measured = tune(plan, uri, Path(workdir), volume, seconds, rounds)
    result = {"kind": "tuning", **run.header(plan, "bench-tune", server), **measured}
    print(f"tune: wrote {run.write(plan, 'tuning.json', result)}")


if __name__ == "__main__":
    main()
