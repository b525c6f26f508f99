"""gunicorn settings follow the environment; the memory store forces one worker."""
from __future__ import annotations

import importlib
import sys

import pytest

from service.config import ConfigError


def load(monkeypatch, **environ):
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop("service.gunicorn_conf", None)
    return importlib.import_module("service.gunicorn_conf")


def test_production_settings(monkeypatch):
    conf = load(monkeypatch, MONGODB_URI="mongodb://db", WEB_CONCURRENCY="3", BIND="0.0.0.0:8000")
    assert (conf.workers, conf.threads, conf.worker_class, conf.bind) == (3, 4, "gthread", "0.0.0.0:8000")
    assert conf.graceful_timeout < conf.timeout


def test_memory_store_runs_one_worker(monkeypatch):
    assert load(monkeypatch, MONGODB_URI="memory://", WEB_CONCURRENCY="4").workers == 1


def test_bad_settings_stop_the_master(monkeypatch):
    with pytest.raises(ConfigError):
        load(monkeypatch, MONGODB_URI="nonsense")
