"""A retry never deletes an acknowledged record, on the real server.

The app runs in this process against MONGODB_URI, so the two attempts of one key can be
ordered exactly: the retry reads the stored ids before the first attempt's insert lands.
The retry's insert really meets the stored record on the server; its answer is then
replaced with an error mongos gives during a shard election (133), which no test server
can be made to give on demand.
"""
from __future__ import annotations

import threading

import pytest
from pymongo import MongoClient

from service import create_app
from service.db import repository
from tests.factories import Inserts, answer, meet

from . import harness

KEY = {"Idempotency-Key": "k"}


@pytest.fixture
def app(mongodb_uri):
    """The app over a database of this test only, with its indexes; dropped afterwards."""
    name = harness.unique("it")
    app = create_app({"MONGODB_URI": mongodb_uri, "MONGODB_DATABASE": name, "CURSOR_SECRET": "x" * 32})
    with app.app_context():
        repository().ensure_indexes()
    yield app
    with MongoClient(mongodb_uri, serverSelectionTimeoutMS=5000) as client:
        client.drop_database(name)


def test_a_retry_that_read_before_the_first_insert_leaves_the_record_acknowledged(app, monkeypatch):
    with app.app_context():
        store = repository()
    record = {"source": harness.unique("s"), "payload": {"n": 1}}
    a_writing, b_read, a_stored = threading.Event(), threading.Event(), threading.Event()
    Inserts(monkeypatch, store.records).then(
        meet(a_writing, b_read, done=a_stored), meet(b_read, a_stored, answer(133)))
    results: dict = {}

    def post(name: str) -> threading.Thread:
        thread = threading.Thread(target=lambda: results.__setitem__(
            name, app.test_client().post("/data", json=record, headers=KEY)))
        thread.start()
        return thread

    first = post("a")
    assert a_writing.wait(10)
    post("b").join(30)
    first.join(30)
    assert results["a"].status_code == 201
    assert results["b"].status_code == 503 and results["b"].headers["Retry-After"]
    assert store.records.count_documents({"source": record["source"]}) == 1
    retry = app.test_client().post("/data", json=record, headers=KEY)
    assert retry.status_code == 200 and retry.get_json() == results["a"].get_json()
