"""Idempotency-Key: a retried POST returns the first record and stores nothing new."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from . import expect

pytestmark = pytest.mark.blackbox


def post(api, body: dict, key: str) -> requests.Response:
    return api.post("/data", json=body, headers={"Idempotency-Key": key})


def test_first_post_is_201_and_a_retry_is_200_with_the_same_record(api, source):
    body = {"source": source, "payload": {"amount": 10}, "tags": ["retry"]}
    first = post(api, body, "order-1")
    created = expect.record(first, 201)
    retry = post(api, body, "order-1")
    assert expect.record(retry, 200) == created
    assert retry.headers["Location"] == first.headers["Location"]
    assert [r["id"] for r in api.walk(source=source)] == [created["id"]]


def test_retry_without_a_timestamp_keeps_the_first_time_of_receipt(api, source):
    body = {"source": source, "payload": {}}
    created = expect.record(post(api, body, "no-timestamp"), 201)
    assert expect.record(post(api, body, "no-timestamp"), 200)["timestamp"] == created["timestamp"]


def test_same_key_with_another_body_is_409(api, source):
    expect.record(post(api, {"source": source, "payload": {"amount": 10}}, "k"), 201)
    body = expect.error(post(api, {"source": source, "payload": {"amount": 11}}, "k"), 409)
    assert "Idempotency-Key" in body["message"]
    assert len(api.walk(source=source)) == 1


def test_keys_are_scoped_per_source(api, source):
    other = source + "-other"
    mine = expect.record(post(api, {"source": source, "payload": {}}, "shared-key"), 201)
    theirs = expect.record(post(api, {"source": other, "payload": {}}, "shared-key"), 201)
    assert mine["id"] != theirs["id"]


def test_an_invalid_request_does_not_use_up_the_key(api, source):
    expect.error(post(api, {"source": source}, "late"), 422, "json.payload")
    expect.record(post(api, {"source": source, "payload": {}}, "late"), 201)


def test_fifty_parallel_identical_requests_store_one_record(api, source):
    body = {"source": source, "payload": {"parallel": True}}

    def one(_):
        # A connection each, so the requests really arrive together.
        return requests.post(f"{api.base_url}/data", json=body, headers={"Idempotency-Key": "burst"},
                             timeout=30)

    with ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(one, range(50)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 49 + [201], statuses
    assert len({r.json()["id"] for r in responses}) == 1
    assert len(api.walk(source=source)) == 1


# Control characters other than tab are not valid in an HTTP field value at all: gunicorn
# refuses those requests with its own 400 before the application sees them.
@pytest.mark.parametrize("key", [
    "",
    "k" * 129,
    "tab\tinside",
    "caf\xe9",
], ids=["empty", "129-chars", "tab", "latin-1"])
def test_invalid_key_is_422(api, source, key):
    response = post(api, {"source": source, "payload": {}}, key)
    expect.error(response, 422, "headers.Idempotency-Key")
    assert api.walk(source=source) == []


@pytest.mark.parametrize("key", ["k" * 128, "~!@#$%^&*()_+{}|:<>?`-=[]\\;',./ \"", "a"],
                         ids=["128-chars", "punctuation", "one-char"])
def test_valid_keys_are_accepted(api, source, key):
    expect.record(post(api, {"source": source, "payload": {}}, key), 201)
    expect.record(post(api, {"source": source, "payload": {}}, key), 200)
