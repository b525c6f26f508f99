"""Assertions on what the API answers, shared by the test modules."""
from __future__ import annotations

import re
from datetime import datetime

import requests

RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")
OBJECT_ID = re.compile(r"[0-9a-f]{24}")
RECORD_FIELDS = {"id", "source", "payload", "tags", "timestamp", "created_at"}


def utc(text: str) -> datetime:
    """Parse a time the API returned, insisting on RFC 3339 in UTC with `Z`."""
    assert RFC3339_UTC.fullmatch(text), f"not RFC 3339 UTC with Z: {text!r}"
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def error_paths(errors, prefix: str = "") -> set[str]:
    """Dotted paths of a flask-smorest `errors` tree: {"json": {"a": ["..."]}} -> {"json.a"}."""
    if not isinstance(errors, dict):
        return {prefix}
    paths = set()
    for key, value in errors.items():
        paths |= error_paths(value, f"{prefix}.{key}" if prefix else str(key))
    return paths


def is_json(response: requests.Response) -> bool:
    """True if the response declares and holds JSON."""
    if response.headers.get("Content-Type", "").split(";")[0] != "application/json":
        return False
    try:
        response.json()
    except ValueError:
        return False
    return True


def error(response: requests.Response, status: int, *paths: str) -> dict:
    """Assert an error response of the documented shape that names each of `paths`."""
    assert response.status_code == status, f"{response.status_code} != {status}: {response.text[:500]}"
    assert is_json(response), response.headers.get("Content-Type")
    body = response.json()
    assert body["code"] == status and isinstance(body["status"], str), body
    named = error_paths(body.get("errors", {}))
    for path in paths:
        assert any(p == path or p.startswith(path + ".") for p in named), f"{path} not in {named}"
    return body


def record(response: requests.Response, status: int = 201) -> dict:
    """Assert a record response of the documented shape and return the record."""
    assert response.status_code == status, f"{response.status_code} != {status}: {response.text[:500]}"
    assert is_json(response)
    body = response.json()
    assert set(body) == RECORD_FIELDS, body
    assert OBJECT_ID.fullmatch(body["id"]), body["id"]
    utc(body["timestamp"])
    utc(body["created_at"])
    return body
