"""Case tables shared by the unit tests and the integration suite: one table, two drivers.

The unit tests post each case through the app factory over the in-memory store; the
integration suite posts it over HTTP to gunicorn in front of a real server.
"""
from __future__ import annotations

import json


def nested(depth: int) -> dict:
    """A payload `depth` objects deep, the payload itself being depth 1."""
    payload: dict = {"leaf": 1}
    for _ in range(depth - 1):
        payload = {"n": payload}
    return payload


def nested_lists(depth: int) -> list:
    """A list `depth` lists deep."""
    value: list = [1]
    for _ in range(depth - 1):
        value = [value]
    return value


def with_size(size: int) -> dict:
    """A payload whose compact JSON is exactly `size` bytes."""
    return {"x": "a" * (size - len('{"x":""}'))}


# (record, the path the 422 must name). Each record breaks exactly one rule.
INVALID_RECORDS = [
    ({"payload": {}}, "json.source"),
    ({"source": "s"}, "json.payload"),
    ({"source": "s", "payload": {}, "extra": 1}, "json.extra"),
    ({"source": "", "payload": {}}, "json.source"),
    ({"source": "s" * 129, "payload": {}}, "json.source"),
    ({"source": "-leading-dash", "payload": {}}, "json.source"),
    ({"source": "has space", "payload": {}}, "json.source"),
    ({"source": "line\n", "payload": {}}, "json.source"),
    ({"source": "ünïcode", "payload": {}}, "json.source"),
    ({"source": 7, "payload": {}}, "json.source"),
    ({"source": "s", "payload": []}, "json.payload"),
    ({"source": "s", "payload": "text"}, "json.payload"),
    ({"source": "s", "payload": None}, "json.payload"),
    ({"source": "s", "payload": {}, "timestamp": "2024-05-01T12:00:00"}, "json.timestamp"),
    ({"source": "s", "payload": {}, "timestamp": "2024-05-01"}, "json.timestamp"),
    ({"source": "s", "payload": {}, "timestamp": "yesterday"}, "json.timestamp"),
    ({"source": "s", "payload": {}, "timestamp": 1714564800}, "json.timestamp"),
    ({"source": "s", "payload": {}, "tags": ["t"] * 33}, "json.tags"),
    ({"source": "s", "payload": {}, "tags": [""]}, "json.tags.0"),
    ({"source": "s", "payload": {}, "tags": ["ok", "t" * 65]}, "json.tags.1"),
    ({"source": "s", "payload": {}, "tags": "t"}, "json.tags"),
    ({"source": "s", "payload": {"$set": 1}}, "json.payload.$set"),
    ({"source": "s", "payload": {"a": {"$where": "1"}}}, "json.payload.a.$where"),
    ({"source": "s", "payload": {"a": {"b\u0000c": 1}}}, "json.payload.a"),
    ({"source": "s", "payload": {"a": {"b": 2**63}}}, "json.payload.a.b"),
    ({"source": "s", "payload": {"a": {"b": -(2**63) - 1}}}, "json.payload.a.b"),
    ({"source": "s", "payload": {"a": [1, 2**64]}}, "json.payload.a.1"),
    ({"source": "s", "payload": nested(33)}, "json.payload"),
    ({"source": "s", "payload": {"a": nested_lists(32)}}, "json.payload"),
    ({"source": "s", "payload": with_size(64 * 1024 + 1)}, "json.payload"),
    ({"source": "s", "payload": {"$where": 1}}, "json.payload.$where"),
    ({"source": "s", "payload": {"a\u0000b": 1}}, "json.payload.a\u0000b"),
    ({"source": "s", "payload": {"list": [1, {"n": 10**30}]}}, "json.payload.list.1.n"),
    ({"source": "s", "payload": {"f": 1e400}}, "json.payload.f"),
    ({"source": "s", "payload": {}, "timestamp": "2024-13-01T12:00:00Z"}, "json.timestamp"),
]


def as_json(record: dict) -> str:
    """The body of a case: json.dumps would write 1e400 as Infinity, so the digits go instead."""
    return json.dumps(record).replace("Infinity", "1e400")
