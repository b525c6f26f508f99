"""`make soak`: constant open-loop load for SOAK_SECONDS (default 600) at one volume.

Compares, per operation, p99 in the last minute with the first minute after warm-up
(SOAK_WARMUP_SECONDS, default 60), and the workers' resident memory (RSS) at the end with
after warm-up. The operations are those `make bench` would load (probe); they run together,
each at half the closed-loop capacity of their even mix. Writes BENCH_RESULTS/soak.json.
"""
from __future__ import annotations

import os
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

from bench import k6, run, servers

MINUTE = 60


def sample_rss(service: servers.Service, stop: threading.Event, every: float = 5.0) -> list:
    """(seconds since start, RSS KiB of all workers, the machine's 1-minute load average) every
    `every` seconds until `stop` is set: other work on the machine moves p99 too, and says so here."""
    samples: list[tuple[float, int, float]] = []
    start = time.monotonic()
    while not stop.is_set():
        load = round(os.getloadavg()[0], 2)
        samples.append((round(time.monotonic() - start, 1), service.worker_rss_kib(), load))
        stop.wait(every)
    return samples


def minutes(path: Path, warmup: int) -> dict:
    """p99 per whole minute after warm-up, per operation."""
    by_op: dict = {}
    for op, raw in k6.collect(path).items():
        start = min(raw["times"]) + warmup
        buckets = defaultdict(list)
        for second, duration in zip(raw["times"], raw["durations"]):
            if second >= start:
                buckets[(second - start) // MINUTE].append(duration)
        whole = sorted(buckets)[:-1] if len(buckets) > 1 else sorted(buckets)  # the last one is partial
        by_op[op] = [round(k6.percentile(buckets[m], 0.99), 2) for m in whole]
    return by_op


def verdict(per_minute: dict, rss: list[tuple], warmup: int) -> dict:
    """Last-minute p99 over first-minute p99 per operation, and RSS growth after warm-up."""
    ratios = {op: round(series[-1] / series[0], 2) for op, series in per_minute.items() if len(series) > 1}
    settled = [kib for second, kib, *_ in rss if second >= warmup] or [kib for _, kib, *_ in rss]
    growth = round((settled[-1] - settled[0]) / settled[0] * 100, 1) if settled and settled[0] else None
    return {"p99_last_over_first_minute": ratios, "rss_kib_after_warmup": settled[0] if settled else None,
            "rss_kib_end": settled[-1] if settled else None, "rss_growth_percent": growth}


def soak(plan: run.Plan, uri: str, workdir: Path, volume: int, seconds: int, warmup: int) -> dict:
    """Prepare like `make bench` at one volume, then one long open-loop run."""
    with run.session(plan, uri, workdir) as bench:
        prepared = bench.prepare(volume)
        mix = bench.mix_capacity(volume, bench.candidates)
        rate = plan.rate or max(1, int(mix / 2))
        stop = threading.Event()
        rss: list = []
        sampler = threading.Thread(target=lambda: rss.extend(sample_rss(bench.service, stop)))
        sampler.start()
        try:
            path = bench.k6("soak", volume, mode="open", ops=",".join(bench.candidates), rate=rate,
                            duration=warmup + seconds)
        finally:
            stop.set()
            sampler.join()
        # What the load POSTed stays: a server whose reads scan shows it in p99 (docs/performance.md).
        records_at_end = bench.repository.records.estimated_document_count()
    per_minute = minutes(path, warmup)
    return {"volume": volume, "seconds": seconds, "rate_per_op": rate,
            "mix_capacity_per_second": round(mix, 1), "records_at_end": records_at_end,
            **prepared, "p99_ms_per_minute": per_minute, "rss_kib": rss,
            "warmup_seconds": warmup, "whole_run": k6.figures(path, warmup + seconds),
            **verdict(per_minute, rss, warmup)}


def main() -> None:
    """Run the soak and write its JSON result."""
    servers.stop_on_sigterm()
    plan = run.Plan()
    seconds = int(os.environ.get("SOAK_SECONDS", "600"))
    volume = int(os.environ.get("SOAK_VOLUME", "10000"))
    # Longer than the benchmark's: the first minute after it is the baseline of the verdict.
    warmup = int(os.environ.get("SOAK_WARMUP_SECONDS", "60"))
    with servers.database(os.environ.get("MONGODB_URI")) as (uri, server, _), \
            tempfile.TemporaryDirectory(prefix="soak-") as workdir:
        measured = soak(plan, uri, Path(workdir), volume, seconds, warmup)
    result = {"kind": "soak", **run.header(plan, "soak", server), **measured}
    print(f"soak: {measured['p99_last_over_first_minute']}, RSS {measured['rss_growth_percent']} %")
    print(f"soak: wrote {run.write(plan, 'soak.json', result)}")


if __name__ == "__main__":
    main()
