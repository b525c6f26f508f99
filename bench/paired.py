"""Timing several ways of doing the same thing, interleaved one request at a time, so that
every way sees the same machine at the same moment (`make bench-edge`, `make bench-tax`)."""
from __future__ import annotations

import http.client
from collections.abc import Callable
from time import perf_counter

from bench.k6 import percentile


def get(connection: http.client.HTTPConnection, path: str) -> bytes:
    """One GET on a kept-alive connection, read whole; anything but 200 is an error."""
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    if response.status != 200:
        raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")
    return body


def interleave(ways: dict[str, Callable[[int], object]], requests: int) -> dict[str, list[float]]:
    """Call each way with i = 0 .. requests-1 in turn; ms per call, the first tenth dropped as warm-up."""
    times: dict[str, list[float]] = {name: [] for name in ways}
    for i in range(requests):
        for name, way in ways.items():
            started = perf_counter()
            way(i)
            times[name].append((perf_counter() - started) * 1000)
    return {name: samples[requests // 10:] for name, samples in times.items()}


def summarize(times: dict[str, list[float]]) -> dict:
    """The requests per way and each way's `<way>_p50_ms` and `<way>_p99_ms`."""
    row = {"requests": len(next(iter(times.values())))}
    for way, samples in times.items():
        row[f"{way}_p50_ms"], row[f"{way}_p99_ms"] = p50_p99(samples)
    return row


def p50_p99(samples: list[float]) -> tuple[float, float]:
    """Nearest-rank p50 and p99 in ms, rounded to microseconds."""
    return round(percentile(samples, 0.5), 3), round(percentile(samples, 0.99), 3)
