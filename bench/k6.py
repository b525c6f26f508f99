"""Run bench/load.js with k6 and turn its raw samples into per-operation figures."""
from __future__ import annotations

import csv
import gzip
import json
import math
import subprocess
from collections import defaultdict
from pathlib import Path

from bench.servers import REPO

K6 = REPO / ".tools" / "bin" / "k6"
SCRIPT = Path(__file__).with_name("load.js")


def run(out: Path, base_url: str, samples: Path, **env) -> Path:
    """One k6 run; `env` sets MODE, OPS, RATE, VUS, DURATION in seconds (see load.js).

    Returns the run's samples file.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    # Absolute: k6 resolves open() paths against the script's directory, not the working one.
    variables = {"BASE_URL": base_url, "SAMPLES": str(samples.resolve()),
                 **{k.upper(): str(v) for k, v in env.items()}}
    command = [str(K6), "run", "--quiet", "--no-usage-report", "--no-thresholds",
               "--out", f"csv={out}", "--system-tags", "scenario,status,expected_response",
               *(f"--env={k}={v}" for k, v in variables.items()), str(SCRIPT)]
    # Past the run itself k6 waits for in-flight requests (at most REQUEST_TIMEOUT) and exits.
    subprocess.run(command, check=True, stdin=subprocess.DEVNULL, timeout=int(env.get("duration", 30)) + 120)
    return out


def samples(path: Path):
    """The rows of a k6 CSV output file (plain or gzip)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as handle:
        yield from csv.DictReader(handle)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least q of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _op(row: dict) -> str:
    """The operation a sample belongs to: load.js tags every request with `op`."""
    tags = dict(pair.split("=", 1) for pair in row["extra_tags"].split("&") if "=" in pair)
    return tags.get("op", row["scenario"])


def collect(path: Path) -> dict:
    """Durations (with their second), failures and dropped iterations per operation.

    In open mode each operation is its own scenario, so dropped iterations, which
    k6 tags by scenario only, belong to the operation of the same name.
    """
    runs: dict = defaultdict(lambda: {"durations": [], "times": [], "failed": 0, "dropped": 0})
    for row in samples(path):
        metric = row["metric_name"]
        if metric == "http_req_duration":
            run = runs[_op(row)]
            run["durations"].append(float(row["metric_value"]))
            run["times"].append(int(row["timestamp"]))
            run["failed"] += row["expected_response"] != "true"
        elif metric == "dropped_iterations":
            runs[row["scenario"]]["dropped"] += int(float(row["metric_value"]))
    return runs


def summarize(raw: dict, seconds: float) -> dict:
    """p50/p99/max in ms, throughput over `seconds`, failures and dropped iterations."""
    durations = raw["durations"]
    return {
        "requests": len(durations),
        "throughput_rps": round(len(durations) / seconds, 1),
        "p50_ms": _ms(percentile(durations, 0.50)),
        "p99_ms": _ms(percentile(durations, 0.99)),
        "max_ms": _ms(max(durations) if durations else None),
        "failed": raw["failed"],
        "dropped": raw["dropped"],
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def figures(path: Path, seconds: float) -> dict:
    """summarize() for every operation of a run that lasted `seconds`."""
    return {op: summarize(raw, seconds) for op, raw in collect(path).items()}


def write_samples(path: Path, ids: list[str], cursors: list[str], post_body: dict) -> Path:
    """The data load.js draws from: record ids, deep-page cursors and the POST body."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"ids": ids, "cursors": cursors, "post_body": post_body}))
    return path
