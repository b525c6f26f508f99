"""Values our rules accept but a server refuses, dates at the edges of what ids hold."""
from __future__ import annotations

import pytest
from bson import ObjectId
from pymongo.errors import AutoReconnect

from service import repository as repository_module
from service.db import repository
from service.ids import new_id
from tests.factories import Inserts, answer, crash


def refuse(app, monkeypatch, code: int, errmsg: str, *indexes: int):
    """Make the server answer `code` for the documents at `indexes` of the next insert."""
    with app.app_context():
        records = repository().records
    Inserts(monkeypatch, records).then(answer(code, *indexes, errmsg=errmsg))
    return records


def batch(count: int, **fields) -> dict:
    return {"records": [{"source": "s", "payload": {"n": n}, **fields} for n in range(count)]}


def test_a_refused_value_is_a_422_not_a_500(app, client, monkeypatch):
    refuse(app, monkeypatch, 2, "nested arrays", 0)
    response = client.post("/data", json={"source": "s", "payload": {"m": [[1]]}})
    assert response.status_code == 422
    assert response.get_json()["errors"]["json"]["payload"] == ["nested arrays"]


def test_other_write_errors_are_503s_undo_nothing_and_log_the_code(app, client, monkeypatch, caplog):
    records = refuse(app, monkeypatch, 14031, "disk full", 1)
    response = client.post("/data/batch", json=batch(2))
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert records.count_documents({}) == 1
    logged = [r for r in caplog.records if r.getMessage() == "database unavailable: BulkWriteError"]
    assert logged[0].code == [14031] and "disk full" not in caplog.text


def test_a_batch_with_a_refused_record_stores_nothing(app, client, monkeypatch):
    records = refuse(app, monkeypatch, 2, "dotted key", 1)
    response = client.post("/data/batch", json=batch(3))
    assert response.status_code == 422
    assert response.get_json()["errors"]["json"]["records"] == {"1": {"payload": ["dotted key"]}}
    assert records.count_documents({}) == 0


def test_undoing_a_batch_never_deletes_another_record(app, client, monkeypatch):
    """An id of the batch that already exists belongs to someone else: it stays, the batch goes."""
    existing = client.post("/data", json={"source": "other", "payload": {"mine": True}}).get_json()
    ids = iter([ObjectId(existing["id"]), new_id(), new_id()])
    monkeypatch.setattr(repository_module, "new_id", lambda: next(ids))
    response = client.post("/data/batch", json=batch(3))
    assert response.status_code == 409
    assert client.get(f"/data/{existing['id']}").get_json() == existing
    with app.app_context():
        assert repository().records.count_documents({}) == 1


def test_a_refused_keyed_batch_releases_its_key_for_a_corrected_body(app, client, monkeypatch):
    headers = {"Idempotency-Key": "k"}
    refuse(app, monkeypatch, 2, "dotted key", 2)
    assert client.post("/data/batch", json=batch(3, tags=["x.y"]), headers=headers).status_code == 422
    corrected = client.post("/data/batch", json=batch(3), headers=headers)
    assert corrected.status_code == 201
    with app.app_context():
        assert repository().records.count_documents({}) == 3


def test_a_refusal_on_a_retry_also_removes_what_earlier_attempts_of_the_key_stored(
        app, client, monkeypatch):
    headers = {"Idempotency-Key": "k"}
    with app.app_context():
        records = repository().records
    client.post("/data", json={"source": "s", "payload": {"n": 0}})  # a record of someone else
    Inserts(monkeypatch, records).then(crash(2, AutoReconnect("reset")))
    assert client.post("/data/batch", json=batch(4), headers=headers).status_code == 503
    assert records.count_documents({}) == 3
    refuse(app, monkeypatch, 2, "dotted key", 3)
    assert client.post("/data/batch", json=batch(4), headers=headers).status_code == 422
    assert records.count_documents({}) == 1
    assert client.post("/data/batch", json=batch(4), headers=headers).status_code == 201
    assert records.count_documents({}) == 5


@pytest.mark.parametrize("timestamp, stored", [
    ("0999-05-01T00:00:00Z", "0999-05-01T00:00:00.000Z"),
    ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999Z"),
])
def test_extreme_timestamps_round_trip(client, timestamp, stored):
    response = client.post("/data", json={"source": "s", "payload": {}, "timestamp": timestamp})
    assert response.get_json()["timestamp"] == stored


@pytest.mark.parametrize("timestamp", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"])
def test_timestamps_outside_utc_years_1_to_9999_are_422(client, timestamp):
    response = client.post("/data", json={"source": "s", "payload": {}, "timestamp": timestamp})
    assert response.status_code == 422
    assert "timestamp" in response.get_json()["errors"]["json"]


@pytest.mark.parametrize("query, count", [
    ("since=1900-01-01T00:00:00Z", 1),
    ("until=1900-01-01T00:00:00Z", 0),
    ("since=2200-01-01T00:00:00Z", 0),
    ("until=9999-12-31T23:59:59Z", 1),
    ("since=0001-01-01T00:00:00Z&until=9999-12-31T23:59:59Z", 1),
])
def test_since_and_until_beyond_what_ids_hold(client, query, count):
    client.post("/data", json={"source": "s", "payload": {}})
    response = client.get(f"/data?{query}")
    assert response.status_code == 200
    assert len(response.get_json()["items"]) == count
