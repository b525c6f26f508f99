"""Gate on a `make bench` result: exit 1 when a latency target is missed.

    python bench/check.py bench/results/volumes.json --max-ratio 1.10 --max-p99-ms 500

Fails when any operation's p99 exceeds --max-p99-ms at any volume, when p99 at any
larger volume over p99 at the smallest (the same operation, under the same load)
exceeds --max-ratio, when any request failed, or when an operation was not put under
load at some volume (it was slower than the probe limit alone, so its p99 is unknown).
Standard library only.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# The challenge's limits: within 500 ms, and no more than 10 % slower with a large volume.
MAX_RATIO = 1.10
MAX_P99_MS = 500.0


def ratios(result: dict) -> dict[int, dict[str, float]]:
    """volume -> operation -> p99 there over p99 at the smallest volume."""
    first = result["levels"][0]["ops"]
    return {level["volume"]: {op: round(f["p99_ms"] / first[op]["p99_ms"], 2)
                              for op, f in level["ops"].items()
                              if f["p99_ms"] and op in first and first[op]["p99_ms"]}
            for level in result["levels"][1:]}


def problems(result: dict, max_ratio: float, max_p99_ms: float) -> list[str]:
    """Every missed target, one line each."""
    found = []
    for level in result["levels"]:
        volume = f"{level['volume']:,} records"
        found += [f"{op} at {volume}: not measured under load ({why})"
                  for op, why in level["excluded"].items()]
        for op, figures in level["ops"].items():
            if figures["p99_ms"] is None or figures["p99_ms"] > max_p99_ms:
                found.append(f"{op} at {volume}: p99 {figures['p99_ms']} ms > {max_p99_ms:g} ms")
            if figures["failed"]:
                found.append(f"{op} at {volume}: {figures['failed']} failed requests")
    low = result["levels"][0]["volume"]
    for volume, by_op in ratios(result).items():
        found += [f"{op}: p99 at {volume:,} / p99 at {low:,} records = {ratio} > {max_ratio:g}"
                  for op, ratio in by_op.items() if ratio > max_ratio]
    return found


def main(argv: list[str] | None = None) -> int:
    """Print the verdict; the exit status is the gate."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="volumes.json written by make bench")
    parser.add_argument("--max-ratio", type=float, default=MAX_RATIO)
    parser.add_argument("--max-p99-ms", type=float, default=MAX_P99_MS)
    args = parser.parse_args(argv)
    result = json.loads(args.results.read_text())
    for level in result["levels"]:
        print(f"{level['volume']:>10,}: " + ", ".join(
            f"{op} p50 {f['p50_ms']} p99 {f['p99_ms']} ms" for op, f in level["ops"].items()))
    for volume, by_op in ratios(result).items():
        print(f"p99 at {volume:,} / p99 at {result['levels'][0]['volume']:,} records: {by_op}")
    found = problems(result, args.max_ratio, args.max_p99_ms)
    for line in found:
        print(f"FAIL {line}")
    print("bench check: " + ("failed" if found else "passed"))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
