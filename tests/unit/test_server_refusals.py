"""Values our rules accept but a server refuses, dates at the edges of what ids hold."""
from __future__ import annotations

import pytest
from pymongo.errors import BulkWriteError, OperationFailure, WriteError

from service.db import repository


def refuse_with(app, monkeypatch, method: str, error: Exception):
    """Make the records collection's `method` raise `error` after calling the real one."""
    with app.app_context():
        records = repository().records
    real = getattr(records, method)

    def refuse(*args, **kwargs):
        real(*args, **kwargs)
        raise error
    monkeypatch.setattr(records, method, refuse)
    return records


def test_a_refused_value_is_a_422_not_a_500(app, client, monkeypatch):
    refuse_with(app, monkeypatch, "insert_one", WriteError("bad", 2, {"errmsg": "nested arrays"}))
    response = client.post("/data", json={"source": "s", "payload": {"m": [[1]]}})
    assert response.status_code == 422
    assert response.get_json()["errors"]["json"]["payload"] == ["nested arrays"]


def test_other_write_errors_stay_500s(app, client, monkeypatch):
    refuse_with(app, monkeypatch, "insert_one", WriteError("disk", 14031, {"errmsg": "full"}))
    assert client.post("/data", json={"source": "s", "payload": {}}).status_code == 500


def test_a_batch_with_a_refused_record_stores_nothing(app, client, monkeypatch):
    details = {"writeErrors": [{"index": 1, "code": 2, "errmsg": "dotted key"}]}
    records = refuse_with(app, monkeypatch, "insert_many", BulkWriteError(details))
    batch = [{"source": "s", "payload": {"n": n}} for n in range(3)]
    response = client.post("/data/batch", json={"records": batch})
    assert response.status_code == 422
    assert response.get_json()["errors"]["json"]["records"] == {"1": {"payload": ["dotted key"]}}
    assert records.count_documents({}) == 0


def test_a_batch_write_concern_error_is_not_undone(app, client, monkeypatch):
    details = {"writeErrors": [], "writeConcernErrors": [{"code": 64, "errmsg": "timeout"}]}
    records = refuse_with(app, monkeypatch, "insert_many", BulkWriteError(details))
    response = client.post("/data/batch", json={"records": [{"source": "s", "payload": {}}]})
    assert response.status_code == 500
    assert records.count_documents({}) == 1


def test_init_db_works_on_a_server_without_ttl_indexes(app, monkeypatch, caplog):
    with app.app_context():
        keys = repository().keys
    monkeypatch.setattr(keys, "create_indexes",
                        lambda models: (_ for _ in ()).throw(OperationFailure("no TTL", code=238)))
    result = app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 0 and "source_1__id_-1" in result.output
    assert "Idempotency-Keys will not expire" in caplog.text


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
