"""gunicorn settings, read from the environment.

Started as: gunicorn -c gunicorn.conf.py 'service:create_app()'

This file lives outside the `service` package on purpose: prometheus_client picks
its multi-process mode when first imported, and importing any module of the
package imports it, so the directory must be set before the package is touched.

Shutdown timing (see docs/reliability.md): on SIGTERM gunicorn stops accepting,
lets in-flight requests finish for up to `graceful_timeout`, then kills workers.
Kubernetes sends SIGTERM after the preStop sleep, and SIGKILL after
terminationGracePeriodSeconds, which must exceed preStop + graceful_timeout.
"""
from __future__ import annotations

import os
import shutil
import tempfile

# Before anything imports prometheus_client (see above). A directory is made only when
# none is configured: gunicorn may load this file more than once.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="data-ingest-metrics-")

from prometheus_client import CollectorRegistry, multiprocess, start_http_server  # noqa: E402

from service.config import Settings  # noqa: E402
from service.logs import formatter  # noqa: E402

# Fail in the master with one line, before any worker boots.
_settings = Settings.from_env()

bind = _settings.bind
metrics_port = _settings.metrics_port
worker_class = "gthread"
# The in-memory store lives in one process: every request must reach the same one.
workers = 1 if _settings.in_memory else _settings.web_concurrency
threads = _settings.threads
timeout = _settings.worker_timeout
graceful_timeout = _settings.graceful_timeout
keepalive = 5
# Recycling workers bounds slow leaks; jitter keeps them from restarting together.
max_requests = _settings.max_requests
max_requests_jitter = max_requests // 10
# Heartbeat files in memory: the container's root filesystem is read-only.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# The control socket would be written under $HOME; nothing here uses it.
control_socket_disable = True
# The app logs one JSON line per request itself (service/logs.py).
accesslog = None
errorlog = "-"
loglevel = _settings.log_level.lower()
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": formatter}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json",
                            "stream": "ext://sys.stdout"}},
    "loggers": {"gunicorn.error": {"handlers": ["stdout"], "level": loglevel.upper(),
                                   "propagate": False}},
    # The app adds its own root handler (service/logs.py); one here would double its lines.
    "root": {"level": loglevel.upper(), "handlers": []},
}


def on_starting(server) -> None:
    """Start from an empty metrics directory: stale files would add old counts."""
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, exist_ok=True)


def when_ready(server) -> None:
    """Serve the workers' merged metrics from the master, on their own port."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    host = bind.rsplit(":", 1)[0].strip("[]")
    start_http_server(metrics_port, addr=host, registry=registry)
    server.log.info("metrics on port %s", metrics_port)


def child_exit(server, worker) -> None:
    """Drop a dead worker's live gauges (in-flight requests)."""
    multiprocess.mark_process_dead(worker.pid)
