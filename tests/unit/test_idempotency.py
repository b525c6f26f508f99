"""Idempotency-Key: a retry returns the first record; a reused key with another body is a 409."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from pymongo.errors import AutoReconnect

from service.db import repository
from tests.factories import crash, stored


DROPPED = crash(0, AutoReconnect("connection reset"))  # the next insert stores nothing


def test_retry_returns_the_original_with_200(post, record, app):
    first = post(record, headers={"Idempotency-Key": "k-1"})
    retry = post(record, headers={"Idempotency-Key": "k-1"})
    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.get_json() == first.get_json()
    assert retry.headers["Location"] == first.headers["Location"]
    assert len(stored(app)) == 1


def test_same_key_different_body_is_409(post, record, app):
    post(record, headers={"Idempotency-Key": "k-1"})
    response = post({**record, "payload": {"amount": 43}}, headers={"Idempotency-Key": "k-1"})
    assert response.status_code == 409
    assert "Idempotency-Key" in response.get_json()["message"]
    assert len(stored(app)) == 1


def test_keys_are_scoped_per_source(post, record, app):
    first = post(record, headers={"Idempotency-Key": "k-1"})
    other = post({**record, "source": "other"}, headers={"Idempotency-Key": "k-1"})
    assert other.status_code == 201
    assert other.get_json()["id"] != first.get_json()["id"]


def test_field_order_does_not_change_the_body(client, app):
    headers = {"Idempotency-Key": "k", "Content-Type": "application/json"}
    first = client.post("/data", data='{"source": "s", "payload": {"a": 1, "b": 2}}', headers=headers)
    retry = client.post("/data", data='{"payload": {"b": 2, "a": 1}, "source": "s"}', headers=headers)
    assert retry.status_code == 200 and retry.get_json()["id"] == first.get_json()["id"]


@pytest.mark.parametrize("key", ["", "x" * 129, "caf\u00e9", "tab\there", "line\n"])
def test_malformed_key_is_422(client, key):
    response = client.post("/data", json={"source": "s", "payload": {}},
                           environ_base={"HTTP_IDEMPOTENCY_KEY": key})
    assert response.status_code == 422
    assert "Idempotency-Key" in response.get_json()["errors"]["headers"]


def test_longest_key_is_accepted(post, record):
    assert post(record, headers={"Idempotency-Key": "~" * 128}).status_code == 201


def test_parallel_identical_requests_store_one_record(app, record):
    def send(_):
        return app.test_client().post("/data", json=record, headers={"Idempotency-Key": "same"})

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(send, range(50)))
    assert sorted(r.status_code for r in responses) == [200] * 49 + [201]
    assert len({r.get_json()["id"] for r in responses}) == 1
    assert len(stored(app)) == 1


def reservation(app, key_id: str) -> dict | None:
    with app.app_context():
        return repository().keys.find_one({"_id": key_id})


def test_a_key_reserved_before_a_crash_completes_on_retry_with_the_reserved_id(
        post, record, app, inserts):
    """The key document is written first; if the record write never happened, a retry does it."""
    inserts.then(DROPPED)
    assert post(record, headers={"Idempotency-Key": "k"}).status_code == 503
    reserved = reservation(app, "billing/k")["record_ids"]
    assert len(stored(app)) == 0
    retry = post(record, headers={"Idempotency-Key": "k"})
    assert retry.status_code == 201
    assert retry.get_json()["id"] == str(reserved[0])
    assert len(stored(app)) == 1


def test_a_key_whose_record_was_never_written_is_409_while_an_attempt_may_still_write(
        post, record, app, inserts):
    inserts.then(DROPPED)
    post(record, headers={"Idempotency-Key": "k"})
    other = post({**record, "payload": {"amount": 1}}, headers={"Idempotency-Key": "k"})
    assert other.status_code == 409


def test_a_key_whose_record_was_never_written_is_taken_over_by_a_corrected_body(
        post, record, app, monkeypatch, inserts):
    """Once no attempt can still write (twice the request budget), the key is free again."""
    with app.app_context():
        repo = repository()
        inserts.then(DROPPED)
        monkeypatch.setattr(repo, "abandon_after", timedelta(0))
    post(record, headers={"Idempotency-Key": "k"})
    abandoned = reservation(app, "billing/k")["record_ids"]
    corrected = post({**record, "payload": {"amount": 1}}, headers={"Idempotency-Key": "k"})
    assert corrected.status_code == 201
    assert corrected.get_json()["id"] != str(abandoned[0])
    assert post(record, headers={"Idempotency-Key": "k"}).status_code == 409
    assert len(stored(app)) == 1


def test_a_key_with_a_stored_record_is_never_taken_over(post, record, app, monkeypatch):
    with app.app_context():
        monkeypatch.setattr(repository(), "abandon_after", timedelta(0))
    post(record, headers={"Idempotency-Key": "k"})
    assert post({**record, "payload": {"amount": 1}}, headers={"Idempotency-Key": "k"}).status_code == 409


def test_a_key_that_expires_during_the_request_is_reserved_again(post, record, app, monkeypatch):
    """Duplicate on insert, gone on read (the TTL monitor in between): reserve again, store once."""
    with app.app_context():
        keys = repository().keys
    post(record, headers={"Idempotency-Key": "k"})
    real_find_one = keys.find_one
    expired = []

    def find_after_expiry(query, *args, **kwargs):
        if not expired:
            expired.append(keys.delete_one({"_id": query["_id"]}).deleted_count)
        return real_find_one(query, *args, **kwargs)
    monkeypatch.setattr(keys, "find_one", find_after_expiry)
    retry = post(record, headers={"Idempotency-Key": "k"})
    assert expired == [1] and retry.status_code == 201
    key = reservation(app, "billing/k")
    assert str(key["record_ids"][0]) == retry.get_json()["id"]
    assert post(record, headers={"Idempotency-Key": "k"}).status_code == 200
    assert len(stored(app)) == 2  # the first record, and the one the new reservation points to


def test_a_key_that_keeps_vanishing_is_a_503(post, record, app, monkeypatch):
    with app.app_context():
        keys = repository().keys
    post(record, headers={"Idempotency-Key": "k"})
    monkeypatch.setattr(keys, "find_one", lambda *args, **kwargs: None)
    response = post(record, headers={"Idempotency-Key": "k"})
    assert response.status_code == 503 and "Idempotency-Key" in response.get_json()["message"]
    assert len(stored(app)) == 1


def test_keys_get_a_ttl_index(app):
    """That the server forgets them is shown against a real server
    (tests/integration/test_idempotency.py::test_a_key_is_forgotten_after_its_ttl)."""
    with app.app_context():
        indexes = repository().keys.index_information()
    assert indexes["expires_at_ttl"]["expireAfterSeconds"] == 0
