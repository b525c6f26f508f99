"""`make bench-slow`: the slow-client scenario (bench/slowclients.py) per server configuration.

Runs it against what every deployment runs: nginx (deploy/nginx/nginx.conf) in front of
gunicorn (two gthread workers, a database). gunicorn alone (`make run`) is a development
server with no defence against slow clients, and is not measured. Writes
BENCH_RESULTS/slow-clients.json.
"""
from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from bench import machine, run, servers, slowclients

SECONDS = float(os.environ.get("SLOW_SECONDS", "30"))


def configs(uri: str) -> dict[str, dict[str, str]]:
    """name -> environment of the service."""
    database = {"MONGODB_URI": uri, "MONGODB_DATABASE": "bench_slow", "CURSOR_SECRET": secrets.token_hex(32)}
    return {
        "nginx + gunicorn, 2 workers x 8 threads": database,
    }


def main() -> None:
    """Each configuration on a fresh service; the figures of each run."""
    servers.stop_on_sigterm()
    plan = run.Plan()
    results = []
    with servers.database(os.environ.get("MONGODB_URI")) as (uri, server, _), \
            tempfile.TemporaryDirectory(prefix="slow-") as workdir:
        for n, (name, env) in enumerate(configs(uri).items()):
            service = servers.Service(Path(workdir) / str(n), env)
            service.init_db()
            with service, servers.Edge(Path(workdir) / f"{n}-edge", service.port) as edge:
                load = [round(v, 2) for v in os.getloadavg()]
                figures = slowclients.run(edge.url, seconds=SECONDS).summary()
            shown = {k: v for k, v in env.items() if k != "CURSOR_SECRET"}
            results.append({"name": name, "env": shown, "load_average_at_start": load, **figures})
            print(f"slow: {name}: {figures['all']}", flush=True)
    result = {"kind": "slow-clients", **machine.provenance("bench-slow"),
              "server": server, "seconds": SECONDS, "configs": results}
    print(f"slow: wrote {run.write(plan, 'slow-clients.json', result)}")


if __name__ == "__main__":
    main()
