"""JSON in, BSON stored, JSON out: values must survive the round trip unchanged."""
from __future__ import annotations

from datetime import datetime, timezone

import orjson
import pytest
from bson import Int64, ObjectId

from . import expect, harness

UNICODE_PAYLOAD = {
    "latin": "héllo wörld",
    "cjk": "中文 日本語 한국어",
    "astral": "𝄞 😀 🎉 𓂀",
    "family-zwj": "👩\u200d👩\u200d👧",
    "combining": "e\u0301",
    "rtl": "עברית العربية",
    "controls": "\u0001\t\u001f",
    "nul-in-value": "a\u0000b",
    "bmp-edge": "\ufffd\uffff",
    "ключ": {"😀": ["значение", "𝄞"]},
    "": "empty key",
}

INTEGERS = {
    "int64-max": 2**63 - 1,
    "int64-min": -(2**63),
    "int32-max": 2**31 - 1,
    "int32-max+1": 2**31,
    "int32-min-1": -(2**31) - 1,
    "beyond-double": 2**53 + 1,
    "zero": 0,
    "in-array": [2**63 - 1, -(2**63)],
}

FLOATS = {"half": 1.5, "tiny": 5e-324, "huge": 1.7976931348623157e308, "negative": -2.5, "whole": 3.0}


def roundtrip(api, source, **fields) -> dict:
    """POST a record, then read it back by id; both answers must agree."""
    created = expect.record(api.post("/data", json={"source": source, **fields}), 201)
    fetched = expect.record(api.get(f"/data/{created['id']}"), 200)
    assert fetched == created
    return fetched


@pytest.mark.blackbox
def test_unicode_survives_in_payload_and_tags(api, source):
    tags = ["日本", "😀", "𝄞" * 64]
    stored = roundtrip(api, source, payload=UNICODE_PAYLOAD, tags=tags)
    assert stored["payload"] == UNICODE_PAYLOAD
    assert stored["tags"] == tags


@pytest.mark.blackbox
def test_64_bit_integer_bounds_survive_exactly(api, source):
    stored = roundtrip(api, source, payload=INTEGERS)
    assert stored["payload"] == INTEGERS
    assert all(type(v) is int for v in stored["payload"].values() if not isinstance(v, list))


@pytest.mark.blackbox
def test_floats_stay_floats_and_integers_stay_integers(api, source):
    payload = {**FLOATS, "int": 3}
    stored = roundtrip(api, source, payload=payload)
    assert stored["payload"] == payload
    assert type(stored["payload"]["whole"]) is float and type(stored["payload"]["int"]) is int


@pytest.mark.blackbox
def test_nesting_at_the_depth_limit_survives(api, source):
    payload: dict = {"leaf": [1, {"k": "v"}]}
    for level in range(29):
        payload = {f"l{level}": payload}
    # 30 objects, then a list and an object inside it: 32 levels in all.
    stored = roundtrip(api, source, payload=payload)
    assert stored["payload"] == payload


@pytest.mark.blackbox
def test_one_level_past_the_depth_limit_is_422(api, source):
    payload: dict = {"leaf": [1, {"k": {"too": "deep"}}]}
    for level in range(29):
        payload = {f"l{level}": payload}
    expect.error(api.post("/data", json={"source": source, "payload": payload}), 422, "json.payload")


@pytest.mark.blackbox
@pytest.mark.parametrize(("sent", "stored"), [
    ("2024-02-29T23:30:00+05:30", "2024-02-29T18:00:00Z"),
    ("2023-12-31T20:00:00-08:00", "2024-01-01T04:00:00Z"),
    ("2024-06-01T12:00:00.123+02:00", "2024-06-01T10:00:00.123Z"),
    ("2024-06-01T12:00:00.999999Z", "2024-06-01T12:00:00.999Z"),
    ("2024-06-01t12:00:00z", "2024-06-01T12:00:00Z"),
    ("2024-06-01T00:00:00-00:00", "2024-06-01T00:00:00Z"),
    ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"),
    ("1969-07-20T20:17:40Z", "1969-07-20T20:17:40Z"),
    ("9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999Z"),
])
def test_timestamps_with_offsets_are_stored_as_utc(api, source, sent, stored):
    # BSON dates hold milliseconds: finer fractions are truncated, documented in the schema.
    record = roundtrip(api, source, payload={}, timestamp=sent)
    assert expect.utc(record["timestamp"]) == expect.utc(stored)


@pytest.mark.blackbox
@pytest.mark.parametrize("timestamp", [
    "0001-01-01T00:30:00+01:00",
    "9999-12-31T23:30:00-01:00",
    "2024-02-30T00:00:00Z",
    "2024-06-01T24:00:00Z",
    "2024-06-01T12:00:00+24:00",
])
def test_unrepresentable_timestamps_are_422_not_500(api, source, timestamp):
    response = api.post("/data", json={"source": source, "payload": {}, "timestamp": timestamp})
    expect.error(response, 422, "json.timestamp")


@pytest.mark.blackbox
@pytest.mark.parametrize("payload", [
    {"a.b": 1},
    {"outer": {"c.d": [1]}},
    {"trailing.": "."},
    {"matrix": [[1, 2], [3, 4]]},
    {"deep": [[[]]]},
], ids=["dotted-key", "nested-dotted-key", "trailing-dot", "nested-arrays", "empty-nested-arrays"])
def test_dotted_keys_and_nested_arrays_round_trip(api, source, payload):
    """MongoDB (5.0+) and FerretDB 2 store '.' in names and arrays in arrays as they are."""
    response = api.post("/data", json={"source": source, "payload": payload})
    created = expect.record(response, 201)
    assert created["payload"] == payload
    assert expect.record(api.get(f"/data/{created['id']}"), 200) == created


def test_stored_bson_types(api, source, records_collection):
    created = api.create(source, {"big": 2**63 - 1, "small": 1, "f": 1.5, "when": "text"},
                         timestamp="2024-02-29T23:30:00+05:30")
    document = records_collection.find_one({"_id": ObjectId(created["id"])})
    assert document is not None
    assert type(document["payload"]["big"]) is Int64
    assert type(document["payload"]["f"]) is float
    assert document["timestamp"] == datetime(2024, 2, 29, 18, 0, tzinfo=timezone.utc)
    assert isinstance(document["created_at"], datetime)
    assert document["source"] == source


def test_the_largest_allowed_payload_fits_the_servers_document_limit(start_service):
    """At PAYLOAD_MAX_BYTES's cap, the payload with the most BSON per JSON byte (an array of
    one-digit integers, about 12.5 MB of BSON) is stored and read back."""
    from service.config import PAYLOAD_MAX_BYTES_CAP
    # FerretDB takes seconds over a million array elements: a budget to match.
    server = start_service(PAYLOAD_MAX_BYTES=str(PAYLOAD_MAX_BYTES_CAP), MAX_CONTENT_LENGTH=str(3 * 2**20),
                           MONGODB_REQUEST_TIMEOUT_MS="60000")
    payload = {"a": [0] * ((PAYLOAD_MAX_BYTES_CAP - len('{"a":[]}') + 1) // 2)}
    body = orjson.dumps({"source": harness.unique("s"), "payload": payload})
    api = harness.Client(server.url)
    created = expect.record(api.post("/data", data=body, headers={"Content-Type": "application/json"},
                                     timeout=90), 201)
    assert expect.record(api.get(f"/data/{created['id']}", timeout=90), 200)["payload"] == payload
