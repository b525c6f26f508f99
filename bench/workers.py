"""POST capacity of the gevent worker against the gthread one, without a database server.

    .venv/bin/python -m bench.workers [SECONDS]

Each worker class serves `make run`'s configuration (one process, memory://); k6 drives
POST /data in a closed loop with 8 VUs for 5 s of warm-up and SECONDS (default 15) of
measure, two rounds interleaved so that drift in the machine's load hits both. The
stand-in for `make bench-tune` when no MongoDB-compatible server is at hand; prints
requests/s per round as JSON.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from bench import k6, preload, servers
from bench.tune import GTHREAD

WORKERS = {"gevent (1 worker)": {}, "gthread (1 worker x 4 threads)": {"GUNICORN_CMD_ARGS": GTHREAD + "4"}}
ROUNDS, VUS, WARMUP_SECONDS = 2, 8, 5


def capacity(work: Path, label: str, env: dict, samples: Path, seconds: int) -> float:
    """POST requests/s of a fresh service, after a warm-up."""
    with servers.Service(work / label, {"MONGODB_URI": "memory://", **env}) as service:
        k6.run(work / f"{label}-warmup.csv", service.url, samples, mode="closed", vus=VUS, ops="post",
               duration=WARMUP_SECONDS)
        path = k6.run(work / f"{label}.csv", service.url, samples, mode="closed", vus=VUS, ops="post",
                      duration=seconds)
    return round(sum(f["requests"] for f in k6.figures(path, seconds).values()) / seconds, 1)


def main() -> None:
    """Both worker classes, ROUNDS times each, interleaved."""
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    result: dict = {"load_average_at_start": [round(v, 2) for v in os.getloadavg()]}
    with tempfile.TemporaryDirectory(prefix="workers-") as work:
        samples = Path(work) / "samples.json"
        k6.write_samples(samples, ["0" * 24], ["0" * 32], preload.payload_body())  # POST needs only the body
        for n in range(ROUNDS):
            for i, (name, env) in enumerate(WORKERS.items()):
                result.setdefault(name, []).append(capacity(Path(work), f"{n}-{i}", env, samples, seconds))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
