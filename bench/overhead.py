"""`make bench-overhead`: CPU the service itself spends per request, with no database.

The app is built by the factory as in production; only its repository is replaced by
an in-process stub that answers at once. Requests go straight into the WSGI callable
(no socket, no test client), so what is timed is Flask, flask-smorest, marshmallow
parsing, validation and serialization, the JSON provider and the service's own code.
CPU time (time.process_time) per request: the median of BENCH_OVERHEAD_REPEATS blocks.
Writes BENCH_RESULTS/overhead.json.
"""
from __future__ import annotations

import io
import json
import os
import statistics
import time
from pathlib import Path

from flask.json.provider import DefaultJSONProvider
from werkzeug.test import EnvironBuilder

from bench import machine, preload
from service import create_app, db
from service.repository import to_document

PAGE_SIZE = 100
BATCH_SIZE = 1000


class StubStore:
    """The repository's interface, answered from memory in constant time."""

    def __init__(self):
        self.documents = [preload.document(i) for i in range(PAGE_SIZE + 1)]

    def insert(self, record: dict) -> dict:
        return to_document(record)

    def insert_many(self, records: list[dict]) -> list:
        return [to_document(record)["_id"] for record in records]

    def insert_idempotent(self, record: dict, key: str) -> tuple[dict, bool]:
        return to_document(record), True

    def get(self, record_id: str) -> dict | None:
        return self.documents[0]

    def page(self, query) -> list[dict]:
        return self.documents[: query.limit + 1]

    def ping(self) -> None:
        return None


def requests() -> dict:
    """Per operation: (method, path, JSON body or None, expected status, times per block)."""
    record = preload.payload_body()
    return {
        "healthz": ("GET", "/healthz", None, 200, 2000),
        "post": ("POST", "/data", record, 201, 1000),
        "by_id": ("GET", f"/data/{preload.record_id(0)}", None, 200, 1000),
        "page_100": ("GET", f"/data?limit={PAGE_SIZE}", None, 200, 200),
        "batch_1000": ("POST", "/data/batch", {"records": [record] * BATCH_SIZE}, 201, 3),
    }


def make_app(json_provider: str):
    """The production app over the stub store, with orjson (the default) or the stdlib provider."""
    app = create_app({"MONGODB_URI": "memory://", "LOG_LEVEL": "WARNING"})
    app.extensions[db.EXTENSION]["repository"] = StubStore()
    if json_provider == "stdlib":
        app.json = DefaultJSONProvider(app)
    return app


def caller(app, method: str, path: str, body: dict | None, status: int):
    """A function that sends the request once through WSGI and checks the status."""
    data = json.dumps(body).encode() if body is not None else b""
    builder = EnvironBuilder(path=path, method=method, data=data,
                             content_type="application/json" if body is not None else None)
    environ = builder.get_environ()
    expected = f"{status} "

    def start_response(got, headers, exc_info=None):
        if not got.startswith(expected):
            raise AssertionError(f"{method} {path}: {got}")

    def call():
        result = app({**environ, "wsgi.input": io.BytesIO(data)}, start_response)
        b"".join(result)
        getattr(result, "close", lambda: None)()

    return call


def measure(call, times: int, repeats: int) -> dict:
    """Median CPU and wall microseconds per call over `repeats` blocks of `times` calls."""
    for _ in range(max(3, times // 10)):
        call()
    cpu, wall = [], []
    for _ in range(repeats):
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        for _ in range(times):
            call()
        cpu.append((time.process_time() - cpu_start) / times * 1e6)
        wall.append((time.perf_counter() - wall_start) / times * 1e6)
    return {"cpu_us": round(statistics.median(cpu)), "wall_us": round(statistics.median(wall)),
            "cpu_us_blocks": [round(v) for v in cpu], "calls": times * repeats}


def main() -> None:
    """Measure every operation with both JSON providers and write the result."""
    repeats = int(os.environ.get("BENCH_OVERHEAD_REPEATS", "5"))
    results: dict = {}
    for provider in ("orjson", "stdlib"):
        app = make_app(provider)
        results[provider] = {op: measure(caller(app, *spec[:4]), spec[4], repeats)
                             for op, spec in requests().items()}
        figures = ", ".join(f"{op} {r['cpu_us']} us" for op, r in results[provider].items())
        print(f"overhead ({provider} JSON): CPU per request: {figures}")
    out = Path(os.environ.get("BENCH_RESULTS", "bench/results"))
    out.mkdir(parents=True, exist_ok=True)
    result = {"kind": "overhead", **machine.provenance("bench-overhead"), "server": "none (a stub store)",
              "record_bytes": len(json.dumps(preload.payload_body())), "page_size": PAGE_SIZE,
              "batch_size": BATCH_SIZE, "providers": results}
    (out / "overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"overhead: wrote {out / 'overhead.json'}")


if __name__ == "__main__":
    main()
