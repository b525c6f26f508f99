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
import resource
import shutil
import tempfile

# Before anything imports prometheus_client (see above). A directory is made only when
# none is configured: gunicorn may load this file more than once.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="data-ingest-metrics-")

from prometheus_client import CollectorRegistry, multiprocess, start_http_server  # noqa: E402

from service.auth import KeyStore  # noqa: E402
from service.config import Settings  # noqa: E402
from service.logs import GunicornLogger, formatter  # noqa: E402

# Fail in the master with one line, before any worker boots: a worker that exits 1 on a bad
# setting or key file is respawned forever (gunicorn halts only on exit codes 3 and 4).
_settings = Settings.from_env()
KeyStore(_settings.api_keys_file)

bind = _settings.bind
metrics_port = _settings.metrics_port
# Synchronous views on a thread pool. Slow clients never reach a thread: every deployment
# puts nginx in front, which buffers whole requests and responses (deploy/nginx/nginx.conf).
worker_class = "gthread"
# 8 had the most POST capacity of 1, 4 and 8 (docs/performance.md); override with
# GUNICORN_CMD_ARGS="--threads N", which gunicorn applies after this file.
threads = 8
# The in-memory store lives in one process: every request must reach the same one.
workers = 1 if _settings.in_memory else _settings.web_concurrency
worker_connections = _settings.worker_connections
timeout = _settings.worker_timeout
graceful_timeout = _settings.graceful_timeout
# How long an idle keep-alive connection from nginx is kept: longer than nginx keeps it
# (keepalive_timeout 60s in its upstream block), so nginx, never gunicorn, closes it and a
# request is never sent on a connection gunicorn is closing.
keepalive = 65
# Recycling workers bounds slow leaks; jitter keeps them from restarting together.
max_requests = _settings.max_requests
max_requests_jitter = max_requests // 10
# Heartbeat files in memory: the container's root filesystem is read-only.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# The control socket would be written under $HOME; nothing here uses it.
control_socket_disable = True
# The app logs one JSON line per request itself (service/logs.py).
accesslog = None
logger_class = GunicornLogger
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


def _raise_open_files_limit(needed: int) -> int:
    """Raise the soft limit of open files toward `needed` (at most the hard limit); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return needed
    soft = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


# Each connection is a file; the database pool, the listener, logs and imports need more.
OPEN_FILES_MARGIN = 256


def on_starting(server) -> None:
    """Start from an empty metrics directory: stale files would add old counts."""
    needed = worker_connections + _settings.max_pool_size + OPEN_FILES_MARGIN
    allowed = _raise_open_files_limit(needed)
    if allowed < needed:
        server.log.warning("open files limited to %d, below the %d that GUNICORN_WORKER_CONNECTIONS=%d "
                           "needs: lower it or raise the limit (ulimit -n)",
                           allowed, needed, worker_connections)
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
