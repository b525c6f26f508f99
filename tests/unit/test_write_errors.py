"""Which write errors undo a request, and what a client sees for each.

Only a deterministic refusal of the content releases the key and removes this request's
documents; any other write error undoes nothing and is a 503: the retry completes it.
"""
from __future__ import annotations

import threading

import pytest
from pymongo.errors import DocumentTooLarge

from service import repository as repository_module
from tests.factories import answer, crash, meet

KEY = {"Idempotency-Key": "k"}
RECORD = {"source": "s", "payload": {"n": 1}}


def post_in_thread(app, results: dict, name: str, body=RECORD) -> threading.Thread:
    thread = threading.Thread(target=lambda: results.__setitem__(
        name, app.test_client().post("/data", json=body, headers=KEY)))
    thread.start()
    return thread


@pytest.mark.parametrize("code", [133, 11601, 13388, 13436, 112, 14031])
def test_a_retry_that_read_before_the_first_insert_never_deletes_its_record(app, store, inserts, code):
    """Attempt A reserves and is writing; its retry B reads the stored ids (none yet); A's
    insert lands and A answers 201; B's insert then fails with an error that is not a
    refusal of the content (mongos during a shard election). A's record and key stay."""
    a_writing, b_read, a_stored = threading.Event(), threading.Event(), threading.Event()
    inserts.then(meet(a_writing, b_read, done=a_stored), meet(b_read, a_stored, answer(code)))
    results: dict = {}
    first = post_in_thread(app, results, "a")
    assert a_writing.wait(10)
    post_in_thread(app, results, "b").join(10)
    first.join(10)
    assert results["a"].status_code == 201
    assert results["b"].status_code == 503 and results["b"].headers["Retry-After"] == "1"
    assert store.records.count_documents({}) == 1
    assert store.keys.count_documents({}) == 1
    retry = app.test_client().post("/data", json=RECORD, headers=KEY)
    assert retry.status_code == 200 and retry.get_json() == results["a"].get_json()


@pytest.mark.parametrize("code", [2, 121, 10334])
def test_a_refusal_of_the_content_releases_the_key_and_stores_nothing(client, store, inserts, code):
    inserts.then(answer(code, errmsg="not storable"))
    refused = client.post("/data", json=RECORD, headers=KEY)
    assert refused.status_code == 422
    assert refused.get_json()["errors"]["json"]["payload"] == ["not storable"]
    assert store.records.count_documents({}) == 0 and store.keys.count_documents({}) == 0


def test_a_release_never_deletes_a_reservation_renewed_meanwhile(store):
    """The key's filter names its ids: a reservation renewed under fresh ids is another one."""
    from service.repository import _same_reservation
    reservation, _ = store._reserve("s/k", "digest", 1)
    renewed = {**reservation, "record_ids": [store._reserve("s/other", "d", 1)[0]["record_ids"][0]]}
    store.keys.replace_one({"_id": "s/k"}, renewed)
    assert store.keys.delete_one(_same_reservation(reservation)).deleted_count == 0
    assert store.keys.find_one({"_id": "s/k"}) == renewed


def test_a_document_over_the_bson_limit_is_a_422_naming_the_record(client, store, inserts, monkeypatch):
    """The driver's own size check (DocumentTooLarge, not a server error) is a refusal too."""
    monkeypatch.setattr(repository_module, "MAX_BSON_BYTES", 200)
    inserts.then(crash(0, DocumentTooLarge("BSON document too large")))
    batch = {"records": [{"source": "s", "payload": {"text": "x" * size}} for size in (1, 1, 1000)]}
    refused = client.post("/data/batch", json=batch, headers=KEY)
    assert refused.status_code == 422
    assert list(refused.get_json()["errors"]["json"]["records"]) == ["2"]
    assert store.records.count_documents({}) == 0 and store.keys.count_documents({}) == 0
