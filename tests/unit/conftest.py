"""Fixtures: every app comes from the factory, over the in-memory store."""
from __future__ import annotations

import pytest
from hypothesis import settings

from service import create_app
from service.db import repository
from tests.factories import Inserts

# No time limit per example: on a loaded machine a request can take longer than hypothesis'
# default 200 ms, and speed is measured by the benchmarks, never by unit tests.
settings.register_profile("unit", deadline=None)
settings.load_profile("unit")

MEMORY = {"MONGODB_URI": "memory://"}


@pytest.fixture
def make_app():
    """Build an app with extra settings (environment variable names and string values)."""
    def build(**overrides: str):
        app = create_app({**MEMORY, **overrides})
        app.config["TESTING"] = True
        return app
    return build


@pytest.fixture
def app(make_app):
    """An app with the default settings and an empty in-memory store."""
    return make_app()


@pytest.fixture
def client(app):
    """A test client of `app`."""
    return app.test_client()


@pytest.fixture
def post(client):
    """POST a record as JSON and return the response."""
    def send(record, **kwargs):
        return client.post("/data", json=record, **kwargs)
    return send


@pytest.fixture
def record():
    """A minimal valid record (a fresh dict each time)."""
    return {"source": "billing", "payload": {"amount": 42}}


@pytest.fixture
def store(app):
    """The repository of `app`."""
    with app.app_context():
        return repository()


@pytest.fixture
def inserts(store, monkeypatch):
    """The one fault injector of record inserts: queue steps (tests.factories) for the next ones."""
    return Inserts(monkeypatch, store.records)
