"""gunicorn settings follow the environment; the memory store forces one worker."""
from __future__ import annotations

import runpy
import tempfile
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import pytest

from service.config import ConfigError, Settings

CONF = Path(__file__).parents[2] / "gunicorn.conf.py"


@pytest.fixture
def load(monkeypatch, tmp_path):
    """Evaluate gunicorn.conf.py under the given environment, as gunicorn does.

    gunicorn.conf.py reads the process environment: every setting the caller's shell may
    have exported is removed first, so only the test's own values count.
    """
    for f in fields(Settings):
        monkeypatch.delenv(f.metadata["env"], raising=False)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))

    def evaluate(**environ):
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        return SimpleNamespace(**runpy.run_path(str(CONF)))
    return evaluate


def test_production_settings(load):
    conf = load(MONGODB_URI="mongodb://db", CURSOR_SECRET="s" * 32, WEB_CONCURRENCY="3", BIND="0.0.0.0:8000")
    assert (conf.workers, conf.worker_class, conf.threads, conf.bind) == (3, "gthread", 8, "0.0.0.0:8000")
    assert conf.worker_connections == 1000
    assert conf.graceful_timeout < conf.timeout


def test_open_files_limit_is_raised_for_the_connections(load, monkeypatch):
    conf = load(MONGODB_URI="memory://", GUNICORN_WORKER_CONNECTIONS="900")
    limits = {"soft": 256, "hard": 1000}
    monkeypatch.setattr(conf.resource, "getrlimit", lambda _: (limits["soft"], limits["hard"]))
    monkeypatch.setattr(conf.resource, "setrlimit", lambda _, value: limits.update(soft=value[0]))
    warnings = []
    server = SimpleNamespace(log=SimpleNamespace(warning=lambda *args: warnings.append(args)))
    conf.on_starting(server)
    assert limits["soft"] == 1000 and "open files limited" in warnings[0][0]
    limits["soft"] = 4096
    warnings.clear()
    conf.on_starting(server)
    assert limits["soft"] == 4096 and not warnings


def test_memory_store_runs_one_worker(load):
    assert load(MONGODB_URI="memory://", WEB_CONCURRENCY="4").workers == 1


def test_bad_settings_stop_the_master(load):
    with pytest.raises(ConfigError):
        load(MONGODB_URI="nonsense")


def test_a_bad_api_keys_file_stops_the_master_with_one_line(load, tmp_path):
    """In a worker it would exit 1, which gunicorn answers by spawning another, forever."""
    with pytest.raises(ConfigError, match="^configuration error: API_KEYS_FILE cannot be read"):
        load(MONGODB_URI="memory://", API_KEYS_FILE=str(tmp_path / "missing"))
    (tmp_path / "keys").write_text("not a key line\n")
    with pytest.raises(ConfigError, match="^configuration error: API_KEYS_FILE line 1"):
        load(MONGODB_URI="memory://", API_KEYS_FILE=str(tmp_path / "keys"))


def test_metrics_directory_is_emptied_at_start(load, tmp_path):
    conf = load(MONGODB_URI="memory://")
    stale = tmp_path / "metrics" / "counter_1.db"
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    conf.on_starting(server=SimpleNamespace(log=SimpleNamespace(warning=print)))
    assert not stale.exists() and stale.parent.is_dir()


def test_a_configured_metrics_directory_creates_no_temporary_one(load, monkeypatch):
    made = []
    monkeypatch.setattr(tempfile, "mkdtemp", lambda **kwargs: made.append(kwargs) or "/unused")
    load(MONGODB_URI="memory://")
    assert made == []


def test_child_exit_removes_the_dead_workers_live_gauges(load, tmp_path):
    conf = load(MONGODB_URI="memory://")
    conf.on_starting(server=SimpleNamespace(log=SimpleNamespace(warning=print)))
    metrics = tmp_path / "metrics"
    dead, alive = metrics / "gauge_livesum_41.db", metrics / "gauge_livesum_42.db"
    kept = [metrics / "counter_41.db", metrics / "gauge_max_41.db", alive]
    for path in (dead, *kept):
        path.write_bytes(b"")
    conf.child_exit(server=None, worker=SimpleNamespace(pid=41))
    assert not dead.exists()
    assert all(path.exists() for path in kept)


def test_bad_server_setting_names_the_variable(load):
    with pytest.raises(ConfigError, match="WEB_CONCURRENCY"):
        load(MONGODB_URI="mongodb://db", WEB_CONCURRENCY="many")
