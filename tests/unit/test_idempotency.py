"""Idempotency-Key: a retry returns the first record; a reused key with another body is a 409."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from service.db import repository


def count(app) -> int:
    with app.app_context():
        return repository().records.count_documents({})


def test_retry_returns_the_original_with_200(post, record, app):
    first = post(record, headers={"Idempotency-Key": "k-1"})
    retry = post(record, headers={"Idempotency-Key": "k-1"})
    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.get_json() == first.get_json()
    assert retry.headers["Location"] == first.headers["Location"]
    assert count(app) == 1


def test_same_key_different_body_is_409(post, record, app):
    post(record, headers={"Idempotency-Key": "k-1"})
    response = post({**record, "payload": {"amount": 43}}, headers={"Idempotency-Key": "k-1"})
    assert response.status_code == 409
    assert "Idempotency-Key" in response.get_json()["message"]
    assert count(app) == 1


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
    assert count(app) == 1


def test_a_key_reserved_before_a_crash_completes_on_retry(post, record, app):
    """The key document is written first; if the record write never happened, a retry does it."""
    with app.app_context():
        repo = repository()
        original = repo.records.insert_one
        repo.records.insert_one = lambda doc: (_ for _ in ()).throw(ConnectionError("crash"))
        with pytest.raises(ConnectionError):
            repo.insert_idempotent({**record, "tags": [], "timestamp": None}, "k")
        repo.records.insert_one = original
    retry = post(record, headers={"Idempotency-Key": "k"})
    assert retry.status_code == 201
    assert count(app) == 1


def test_keys_expire_through_a_ttl_index(app):
    with app.app_context():
        repo = repository()
        repo.ensure_indexes()
        indexes = repo.keys.index_information()
    assert indexes["expires_at_ttl"]["expireAfterSeconds"] == 0
