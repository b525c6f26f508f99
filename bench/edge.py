"""What the nginx edge costs a request: the same reads straight to gunicorn and through
nginx (deploy/nginx/nginx.conf, as deployed), interleaved one by one on two keep-alive
connections, so both paths see the same machine at the same moment.

    .venv/bin/python -m bench.edge        (make bench-edge)

The store is MONGODB_URI (default memory://: the edge's cost does not depend on it).
BENCH_EDGE_REQUESTS requests per read and path, the first tenth dropped as warm-up.
Writes BENCH_RESULTS/edge.json.
"""
from __future__ import annotations

import http.client
import json
import os
import secrets
import tempfile
from pathlib import Path

from bench import machine, paired
from bench.servers import Edge, Service, server_version

RECORDS = 200


def store_records(connection: http.client.HTTPConnection) -> list[str]:
    """RECORDS records of about 1 KiB; their ids."""
    ids = []
    for n in range(RECORDS):
        body = json.dumps({"source": "edge", "payload": {"n": n, "pad": "x" * 900}})
        connection.request("POST", "/data", body=body, headers={"Content-Type": "application/json"})
        ids.append(json.loads(connection.getresponse().read())["id"])
    return ids


def compare(direct, edge, path_of, requests: int) -> dict:
    """p50/p99 of both paths, interleaved, and the edge's cost at each."""
    times = paired.interleave({"direct": lambda i: paired.get(direct, path_of(i)),
                               "edge": lambda i: paired.get(edge, path_of(i))}, requests)
    row = paired.summarize(times)
    for name in ("p50", "p99"):
        row[f"cost_{name}_ms"] = round(row[f"edge_{name}_ms"] - row[f"direct_{name}_ms"], 3)
    return row


def main() -> None:
    """Start gunicorn and nginx in front of it, measure, write edge.json."""
    requests = int(os.environ.get("BENCH_EDGE_REQUESTS", "2000"))
    uri = os.environ.get("MONGODB_URI", "memory://")
    work = Path(tempfile.mkdtemp(prefix="bench-edge-"))
    service = Service(work, {"MONGODB_URI": uri, "CURSOR_SECRET": secrets.token_hex(32)})
    if uri != "memory://":
        service.init_db()
    with service, Edge(work / "edge", service.port) as edge:
        direct = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
        through = http.client.HTTPConnection("127.0.0.1", edge.port, timeout=10)
        ids = store_records(direct)
        reads = {"by id": lambda i: f"/data/{ids[i % len(ids)]}",
                 "page of 100": lambda i: "/data?limit=100"}
        results = {name: compare(direct, through, path_of, requests) for name, path_of in reads.items()}
    for name, row in results.items():
        print(f"edge: {name}: p50 {row['direct_p50_ms']} -> {row['edge_p50_ms']} ms "
              f"(+{row['cost_p50_ms']}), p99 {row['direct_p99_ms']} -> {row['edge_p99_ms']} ms")
    out = Path(os.environ.get("BENCH_RESULTS", "bench/results"))
    out.mkdir(parents=True, exist_ok=True)
    server = "memory:// (in-process)" if uri == "memory://" else server_version(uri)
    result = {"kind": "edge", **machine.provenance("bench-edge"), "server": server, "reads": results}
    (out / "edge.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"edge: wrote {out / 'edge.json'}")


if __name__ == "__main__":
    main()
