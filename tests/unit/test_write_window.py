"""Reserved ids are written only while young: what the feed's settle horizon relies on.

With MONGODB_REQUEST_TIMEOUT_MS=1000, a reserved id may be written for 1 s after it was
made; from 2 s (no attempt can still be writing it) a retry writes the missing records
under fresh ids, recorded in the key; in between a retry is a 503.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from bson import ObjectId
from pymongo.errors import AutoReconnect

from service.db import repository
from service.ids import first_id_at, made_at
from service.repository import to_document
from tests.factories import Clock, crash, stored


@pytest.fixture
def app(make_app):
    """An app whose request budget, and so whose write window, is one second."""
    return make_app(MONGODB_REQUEST_TIMEOUT_MS="1000")


def age(app, key_id: str, seconds: float) -> list[ObjectId]:
    """Make the key's reserved ids (none stored yet) `seconds` old; return them."""
    with app.app_context():
        keys = repository().keys
        count = len(keys.find_one({"_id": key_id})["record_ids"])
        moment = datetime.now(timezone.utc) - timedelta(seconds=seconds)
        start = int.from_bytes(first_id_at(moment).binary, "big")
        older = [ObjectId((start + n).to_bytes(12, "big")) for n in range(count)]
        keys.update_one({"_id": key_id}, {"$set": {"record_ids": older}})
        return older


def stored_ids(app) -> list[str]:
    return [str(d["_id"]) for d in stored(app)]


def test_a_retry_of_an_old_unwritten_key_gets_a_fresh_id_recorded_in_the_key(client, app, inserts):
    record = {"source": "s", "payload": {"n": 1}}
    inserts.then(crash(0, AutoReconnect("connection reset")))
    assert client.post("/data", json=record, headers={"Idempotency-Key": "k"}).status_code == 503
    [old] = age(app, "s/k", 3)
    retry = client.post("/data", json=record, headers={"Idempotency-Key": "k"})
    assert retry.status_code == 201
    fresh = retry.get_json()["id"]
    assert fresh != str(old) and ObjectId(fresh).generation_time > old.generation_time
    assert stored_ids(app) == [fresh]
    with app.app_context():
        assert repository().keys.find_one({"_id": "s/k"})["record_ids"] == [ObjectId(fresh)]
    again = client.post("/data", json=record, headers={"Idempotency-Key": "k"})
    assert (again.status_code, again.get_json()["id"]) == (200, fresh)


def test_a_retry_while_an_attempt_may_still_write_the_old_id_is_503(client, app, inserts):
    record = {"source": "s", "payload": {"n": 1}}
    inserts.then(crash(0, AutoReconnect("connection reset")))
    client.post("/data", json=record, headers={"Idempotency-Key": "k"})
    age(app, "s/k", 1.5)
    retry = client.post("/data", json=record, headers={"Idempotency-Key": "k"})
    assert retry.status_code == 503 and retry.headers["Retry-After"] == "1"
    assert "retry" in retry.get_json()["message"] and stored_ids(app) == []


def test_a_retry_of_an_old_key_whose_record_exists_returns_it(client, app, inserts):
    record = {"source": "s", "payload": {"n": 1}}
    inserts.then(crash(0, AutoReconnect("connection reset")))
    client.post("/data", json=record, headers={"Idempotency-Key": "k"})
    [old] = age(app, "s/k", 3)
    with app.app_context():  # the first attempt's write had landed; only its answer was lost
        repository().records.insert_one(to_document({**record, "tags": [], "timestamp": None}, old))
    retry = client.post("/data", json=record, headers={"Idempotency-Key": "k"})
    assert (retry.status_code, retry.get_json()["id"]) == (200, str(old))
    assert stored_ids(app) == [str(old)]


def test_an_old_partly_stored_batch_keeps_its_stored_ids_and_renews_the_rest(client, app, inserts):
    batch = {"records": [{"source": "s", "payload": {"i": i}} for i in range(5)]}
    inserts.then(crash(0, AutoReconnect("connection reset")))
    assert client.post("/data/batch", json=batch, headers={"Idempotency-Key": "b"}).status_code == 503
    old = age(app, "#batch/b", 3)
    with app.app_context():  # the first attempt had stored two records before its connection dropped
        repository().records.insert_many([to_document({**r, "tags": [], "timestamp": None}, i)
                                          for r, i in zip(batch["records"][:2], old)])
    retry = client.post("/data/batch", json=batch, headers={"Idempotency-Key": "b"})
    assert retry.status_code == 201
    ids = retry.get_json()["ids"]
    assert ids[:2] == [str(i) for i in old[:2]] and not set(ids[2:]) & {str(i) for i in old}
    assert stored_ids(app) == sorted(ids)
    again = client.post("/data/batch", json=batch, headers={"Idempotency-Key": "b"})
    assert (again.status_code, again.get_json()["ids"]) == (200, ids)


def test_two_retries_renewing_at_once_store_one_record(client, app, monkeypatch, inserts):
    """The renewal is a conditional update: the retry that loses it is a 503, then finds the winner's id."""
    record = {"source": "s", "payload": {"n": 1}}
    inserts.then(crash(0, AutoReconnect("connection reset")))
    client.post("/data", json=record, headers={"Idempotency-Key": "k"})
    age(app, "s/k", 3)
    with app.app_context():
        keys = repository().keys
    real = keys.find_one_and_update

    def renewed_meanwhile(*args, **kwargs):
        monkeypatch.setattr(keys, "find_one_and_update", real)
        keys.update_one({"_id": "s/k"}, {"$set": {"record_ids": [ObjectId()]}})
        return real(*args, **kwargs)
    monkeypatch.setattr(keys, "find_one_and_update", renewed_meanwhile)
    assert client.post("/data", json=record, headers={"Idempotency-Key": "k"}).status_code == 503
    winner = client.post("/data", json=record, headers={"Idempotency-Key": "k"})
    assert winner.status_code == 201 and stored_ids(app) == [winner.get_json()["id"]]


def test_a_replay_of_a_stored_batch_is_answered_without_writing(client, app, monkeypatch):
    """Every reserved id is stored: the replay reads them and answers, whatever the time
    left in the window (writing 1,000 duplicates could outlast it)."""
    batch = {"records": [{"source": "s", "payload": {"i": i}} for i in range(3)]}
    first = client.post("/data/batch", json=batch, headers={"Idempotency-Key": "b"})
    assert first.status_code == 201
    with app.app_context():
        monkeypatch.setattr(repository().records, "insert_many", refuse_writes)
    replay = client.post("/data/batch", json=batch, headers={"Idempotency-Key": "b"})
    assert (replay.status_code, replay.get_json()["ids"]) == (200, first.get_json()["ids"])


def test_a_window_that_closes_before_the_write_starts_is_a_503(client, app, monkeypatch, inserts):
    """The retry sees the window open, then the clock passes its end: no write, retry later."""
    record = {"source": "s", "payload": {"n": 1}}
    inserts.then(crash(0, AutoReconnect("connection reset")))
    assert client.post("/data", json=record, headers={"Idempotency-Key": "k"}).status_code == 503
    with app.app_context():
        store = repository()
    [reserved] = store.keys.find_one({"_id": "s/k"})["record_ids"]
    closes = made_at(reserved) + store.write_window
    # Read when reserving and when checking what is stored (open), then before writing (closed).
    store.clock = Clock()
    open_, closed = closes - timedelta(milliseconds=1), closes + timedelta(milliseconds=1)
    store.clock.readings = [open_, open_, closed]
    monkeypatch.setattr(store.records, "insert_many", refuse_writes)
    retry = client.post("/data", json=record, headers={"Idempotency-Key": "k"})
    assert retry.status_code == 503 and retry.headers["Retry-After"] == "1"
    assert store.clock.taken == 3  # the closed reading was the one before writing
    assert stored_ids(app) == []


def refuse_writes(documents, **kwargs):
    raise AssertionError("nothing may be written")
