"""`make bench-slow`: the slow-client scenario (bench/slowclients.py) per server configuration.

Runs it against the image's configuration (two gthread workers, a database) and `make
run`'s (one worker, memory://). Writes BENCH_RESULTS/slow-clients.json.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench import machine, run, servers, slowclients

SECONDS = float(os.environ.get("SLOW_SECONDS", "30"))


def configs(uri: str) -> dict[str, dict[str, str]]:
    """name -> environment of the service."""
    database = {"MONGODB_URI": uri, "MONGODB_DATABASE": "bench_slow"}
    return {
        "image: 2 workers x 8 threads": database,
        "make run: 1 worker x 8 threads, memory://": {"MONGODB_URI": "memory://"},
    }


def main() -> None:
    """Each configuration on a fresh service; the figures of each run."""
    servers.stop_on_sigterm()
    plan = run.Plan()
    results = []
    with servers.database(os.environ.get("MONGODB_URI")) as (uri, server), \
            tempfile.TemporaryDirectory(prefix="slow-") as workdir:
        for n, (name, env) in enumerate(configs(uri).items()):
            service = servers.Service(Path(workdir) / str(n), env)
            if env["MONGODB_URI"] != "memory://":
                service.init_db()
            with service:
                load = [round(v, 2) for v in os.getloadavg()]
                figures = slowclients.run(service.url, seconds=SECONDS).summary()
            results.append({"name": name, "env": env, "load_average_at_start": load, **figures})
            print(f"slow: {name}: {figures['all']}", flush=True)
    result = {"kind": "slow-clients", "command": "make bench-slow", "machine": machine.describe(None),
              "server": server, "seconds": SECONDS, "configs": results}
    print(f"slow: wrote {run.write(plan, 'slow-clients.json', result)}")


if __name__ == "__main__":
    main()
