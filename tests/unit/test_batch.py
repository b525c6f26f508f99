"""POST /data/batch: all or nothing, ids in order."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from pymongo.errors import AutoReconnect, BulkWriteError

from service.db import repository
from tests.factories import crash, stored


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


def send(client, batch: list[dict], key: str | None = "b-1"):
    headers = {"Idempotency-Key": key} if key else {}
    return client.post("/data/batch", json={"records": batch}, headers=headers)


def test_keyed_batch_is_201_then_200_with_the_same_ids_in_the_same_order(client, app):
    first, retry = send(client, records(4)), send(client, records(4))
    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.get_json()["ids"] == first.get_json()["ids"]
    assert [str(d["_id"]) for d in stored(app)] == first.get_json()["ids"]


def test_keyed_batch_with_another_body_is_409(client, app):
    send(client, records(2))
    other = send(client, records(3))
    assert other.status_code == 409 and "Idempotency-Key" in other.get_json()["message"]
    assert len(stored(app)) == 2


def test_batch_keys_are_apart_from_record_keys(client):
    record = {"source": "s", "payload": {"i": 0}}
    assert client.post("/data", json=record, headers={"Idempotency-Key": "same"}).status_code == 201
    assert send(client, [record], key="same").status_code == 201


def test_parallel_identical_batches_store_once(app):
    def one(_):
        return send(app.test_client(), records(10), key="burst")

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(one, range(24)))
    # 201 for each request that stored any record: the unordered inserts of two requests
    # that meet can each store part of the batch; the ids and the stored records are one set.
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 201} and 201 in statuses
    assert len({tuple(r.get_json()["ids"]) for r in responses}) == 1
    assert len(stored(app)) == 10


def test_a_retry_after_a_partial_write_completes_the_batch_to_the_reserved_ids(client, app, inserts):
    with app.app_context():
        repo = repository()
    inserts.then(crash(3, AutoReconnect("connection reset")))
    assert send(client, records(8)).status_code == 503
    with app.app_context():
        reserved = [str(i) for i in repo.keys.find_one({"_id": "#batch/b-1"})["record_ids"]]
    assert [str(d["_id"]) for d in stored(app)] == reserved[:3]
    retry = send(client, records(8))
    assert retry.status_code == 201 and retry.get_json()["ids"] == reserved
    assert [str(d["_id"]) for d in stored(app)] == reserved
    assert [d["payload"]["i"] for d in stored(app)] == list(range(8))
    assert send(client, records(8)).status_code == 200


def test_a_batch_write_concern_error_is_a_503_and_a_retry_completes_it(client, app, inserts):
    details = {"writeErrors": [], "writeConcernErrors": [{"code": 64, "errmsg": "waiting for replication"}]}
    inserts.then(crash(2, BulkWriteError(details)))
    failed = send(client, records(2))
    assert failed.status_code == 503 and failed.headers["Retry-After"] == "1"
    assert len(stored(app)) == 2  # written, only not confirmed: nothing is undone
    retry = send(client, records(2))
    assert retry.status_code == 200 and len(stored(app)) == 2


def test_a_transient_write_error_undoes_nothing_and_a_retry_completes_the_batch(client, app, inserts):
    """A primary stepping down under record 2 of 4: a 503, and the retry stores just the rest."""
    details = {"writeErrors": [{"index": 2, "code": 11602, "errmsg": "InterruptedDueToReplStateChange"},
                               {"index": 3, "code": 11602, "errmsg": "InterruptedDueToReplStateChange"}]}
    inserts.then(crash(2, BulkWriteError(details)))
    assert send(client, records(4)).status_code == 503
    assert len(stored(app)) == 2
    retry = send(client, records(4))
    assert retry.status_code == 201
    assert [str(d["_id"]) for d in stored(app)] == retry.get_json()["ids"]
