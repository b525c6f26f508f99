"""POST /data/batch: all or nothing, ids in order."""
from __future__ import annotations

from service.db import repository


def records(count: int) -> list[dict]:
    return [{"source": "s", "payload": {"i": i}} for i in range(count)]


def test_batch_stores_every_record_and_returns_ids_in_order(client):
    response = client.post("/data/batch", json={"records": records(5)})
    assert response.status_code == 201
    ids = response.get_json()["ids"]
    assert [client.get(f"/data/{i}").get_json()["payload"]["i"] for i in ids] == [0, 1, 2, 3, 4]
    assert ids == sorted(ids)


def test_one_invalid_record_rejects_the_batch_and_names_each_failure(client, app):
    batch = records(5)
    batch[1]["source"] = ""
    batch[3]["payload"] = {"$bad": 1}
    response = client.post("/data/batch", json={"records": batch})
    assert response.status_code == 422
    errors = response.get_json()["errors"]["json"]["records"]
    assert set(errors) == {"1", "3"}
    assert "source" in errors["1"] and "$bad" in errors["3"]["payload"]
    with app.app_context():
        assert repository().records.count_documents({}) == 0


def test_batch_size_limits(make_app):
    client = make_app(BATCH_MAX_RECORDS="3").test_client()
    assert client.post("/data/batch", json={"records": records(3)}).status_code == 201
    too_many = client.post("/data/batch", json={"records": records(4)})
    assert too_many.status_code == 422
    assert "records" in too_many.get_json()["errors"]["json"]
    assert client.post("/data/batch", json={"records": []}).status_code == 422


def test_batch_needs_records(client):
    assert client.post("/data/batch", json={}).status_code == 422
    assert client.post("/data/batch", json={"records": records(1), "x": 1}).status_code == 422
    assert client.post("/data/batch", data="[]", content_type="text/plain").status_code == 415
