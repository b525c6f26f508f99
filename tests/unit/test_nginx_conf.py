"""The nginx edge and the app agree: one body limit, and nginx gives up on gunicorn last."""
from __future__ import annotations

import re
import runpy
from pathlib import Path

from service.config import Settings

ROOT = Path(__file__).parents[2]
NGINX = (ROOT / "deploy" / "nginx" / "nginx.conf").read_text()
DEFAULTS = Settings.from_env({"MONGODB_URI": "memory://"})


def directive(name: str, text: str = NGINX) -> str:
    """The value of the one `name` directive in `text` (all of nginx.conf by default)."""
    (value,) = re.findall(rf"^\s*{name} ([^;]+);", text, re.MULTILINE)
    return value


def seconds(value: str) -> int:
    return int(value.removesuffix("s"))


def test_nginx_refuses_bodies_above_the_apps_limit_and_says_which():
    assert int(directive("client_max_body_size").removesuffix("m")) * 2**20 == DEFAULTS.max_content_length
    assert f"larger than {DEFAULTS.max_content_length} bytes" in NGINX


def test_a_stuck_worker_is_killed_before_nginx_stops_waiting_for_it():
    assert seconds(directive("proxy_read_timeout")) > DEFAULTS.worker_timeout


def test_gunicorn_keeps_idle_connections_longer_than_nginx_reuses_them(monkeypatch, tmp_path):
    monkeypatch.setenv("MONGODB_URI", "memory://")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    gunicorn = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    upstream = NGINX.split("upstream app {")[1].split("}")[0]
    assert gunicorn["keepalive"] > seconds(directive("keepalive_timeout", upstream))
