"""POST /data: what is stored, what is refused, and how."""
from __future__ import annotations


import pytest

from ..cases import INVALID_RECORDS, as_json


def nested(depth: int) -> dict:
    """A payload whose nesting depth is `depth` (the payload object itself is 1)."""
    payload: dict = {}
    for _ in range(depth - 1):
        payload = {"n": payload}
    return payload


def sized(size: int) -> dict:
    """A payload whose compact JSON is exactly `size` bytes."""
    return {"s": "x" * (size - len('{"s":""}'))}


def test_created_record_is_returned_with_location(post, client, record):
    response = post({**record, "tags": ["a"], "timestamp": "2024-05-01T14:00:00.123456+02:00"})
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"id", "source", "payload", "tags", "timestamp", "created_at"}
    assert len(body["id"]) == 24 and int(body["id"], 16) >= 0
    assert response.headers["Location"] == f"/data/{body['id']}"
    assert body["timestamp"] == "2024-05-01T12:00:00.123Z"
    assert body["created_at"].endswith("Z")
    assert client.get(response.headers["Location"]).get_json() == body


def test_timestamp_defaults_to_receipt_and_tags_to_empty(post, record):
    """The default timestamp is the id's time to the millisecond; created_at is its second."""
    body = post(record).get_json()
    assert body["tags"] == []
    assert body["created_at"].endswith(".000Z")
    assert body["timestamp"][:19] == body["created_at"][:19]


@pytest.mark.parametrize("record, path", INVALID_RECORDS, ids=[path for _, path in INVALID_RECORDS])
def test_invalid_record_is_422_naming_the_field(client, record, path):
    response = client.post("/data", data=as_json(record), content_type="application/json")
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    for key in path.split("."):
        errors = errors[key]
    assert errors


@pytest.mark.parametrize("record, status", [
    ({"source": "s" * 128, "payload": {}}, 201),
    ({"source": "s" * 129, "payload": {}}, 422),
    ({"source": "A0._:-z", "payload": {}}, 201),
    ({"source": "s", "payload": nested(32)}, 201),
    ({"source": "s", "payload": nested(33)}, 422),
    ({"source": "s", "payload": {"l": [[[]]]}}, 201),
    ({"source": "s", "payload": {"l": [nested(30)]}}, 201),
    ({"source": "s", "payload": {"l": [nested(31)]}}, 422),
    ({"source": "s", "payload": sized(65536)}, 201),
    ({"source": "s", "payload": sized(65537)}, 422),
    ({"source": "s", "payload": {"max": 2**63 - 1, "min": -(2**63)}}, 201),
    ({"source": "s", "payload": {"n": 2**63}}, 422),
    ({"source": "s", "payload": {}, "tags": ["t" * 64] * 32}, 201),
    ({"source": "s", "payload": {}, "tags": ["t" * 65]}, 422),
])
def test_limits_hold_at_their_boundaries(post, record, status):
    assert post(record).status_code == status


def test_depth_error_names_the_path(post):
    errors = post({"source": "s", "payload": nested(33)}).get_json()["errors"]["json"]["payload"]
    path = []
    while isinstance(errors, dict):
        key, errors = next(iter(errors.items()))
        path.append(key)
    assert path == ["n"] * 32
    assert errors[0].startswith("payload." + ".".join(path))


def test_limits_are_configurable(make_app):
    client = make_app(PAYLOAD_MAX_BYTES="100", PAYLOAD_MAX_DEPTH="2").test_client()
    assert client.post("/data", json={"source": "s", "payload": sized(100)}).status_code == 201
    assert client.post("/data", json={"source": "s", "payload": sized(101)}).status_code == 422
    assert client.post("/data", json={"source": "s", "payload": nested(3)}).status_code == 422


def test_unicode_and_large_values_round_trip(post, client):
    payload = {"émoji": "😀 \u0000 ok", "nested": {"list": [1, 2.5, True, None, "ß"]},
               "big": 2**63 - 1}
    created = post({"source": "s", "payload": payload}).get_json()
    assert client.get(f"/data/{created['id']}").get_json()["payload"] == payload


@pytest.mark.parametrize("body, content_type, status", [
    ('{"source": "s", "payload": {}}', "text/plain", 415),
    ('{"source": "s", "payload": {}}', None, 415),
    ('{"source": "s", "payload": {}}', "application/x-www-form-urlencoded", 415),
    ('{"source": "s", "payload": {', "application/json", 400),
    ("", "application/json", 400),
    ('{"source": "s", "payload": {"x": NaN}}', "application/json", 400),
    ('{"source": "s", "payload": {"x": Infinity}}', "application/json", 400),
    ('{"source": "s", "payload": {"x": -Infinity}}', "application/json", 400),
    ('{"source": "s", "payload": {"x": "\\ud800"}}', "application/json", 400),
    ('{"source": "s", "payload": {"\\udfff": 1}}', "application/json", 400),
    ('["not", "an", "object"]', "application/json", 422),
])
def test_body_must_be_standard_json(client, body, content_type, status):
    response = client.post("/data", data=body, content_type=content_type)
    assert response.status_code == status
    assert response.get_json()["code"] == status


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/vnd.api+json"])
def test_json_media_types_are_accepted(client, content_type):
    response = client.post("/data", data='{"source": "s", "payload": {}}', content_type=content_type)
    assert response.status_code == 201


def test_invalid_utf8_is_400(client):
    response = client.post("/data", data=b'{"source": "\xff"}', content_type="application/json")
    assert response.status_code == 400


def test_deeply_nested_body_is_400_not_500(client):
    response = client.post("/data", data="[" * 100_000, content_type="application/json")
    assert response.status_code == 400


def test_body_over_the_limit_is_413(make_app):
    client = make_app(MAX_CONTENT_LENGTH="2048").test_client()
    response = client.post("/data", json={"source": "s", "payload": sized(4096)})
    assert response.status_code == 413
    assert response.get_json()["code"] == 413


def test_default_body_limit_is_one_mebibyte(client):
    body = '{"source": "s", "payload": {"s": "' + "x" * 2**20 + '"}}'
    assert client.post("/data", data=body, content_type="application/json").status_code == 413
