"""gunicorn settings, read from the environment.

Started as: gunicorn -c python:service.gunicorn_conf 'service:create_app()'

Shutdown timing (see docs/reliability.md): on SIGTERM gunicorn stops accepting,
lets in-flight requests finish for up to `graceful_timeout`, then kills workers.
Kubernetes sends SIGTERM after the preStop sleep, and SIGKILL after
terminationGracePeriodSeconds, which must exceed preStop + graceful_timeout.
"""
from __future__ import annotations

import os

from service.config import Settings

# Fail in the master with one line, before any worker boots.
_settings = Settings.from_env()

bind = os.environ.get("BIND", "127.0.0.1:8000")
worker_class = "gthread"
# The in-memory store lives in one process: every request must reach the same one.
workers = 1 if _settings.in_memory else int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "25"))
keepalive = 5
# Recycle workers now and then so slow leaks cannot grow without bound; jitter
# keeps them from restarting together.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = max_requests // 10
# Heartbeat files in memory: the container's root filesystem is read-only.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# The control socket would be written under $HOME; nothing here uses it.
control_socket_disable = True
accesslog = None
errorlog = "-"
loglevel = _settings.log_level.lower()
