"""Failures answer JSON with the right status and no internals."""
from __future__ import annotations

import pytest
from pymongo.errors import (
    AutoReconnect, DuplicateKeyError, NetworkTimeout, OperationFailure, ServerSelectionTimeoutError,
    WTimeoutError,
)


@pytest.fixture
def broken(app, monkeypatch):
    """Make every repository method raise the given exception."""
    def breaks(error: Exception):
        repo = app.extensions["mongodb"]["repository"]
        for name in ("insert", "insert_many", "insert_idempotent", "get", "page", "ping"):
            monkeypatch.setattr(repo, name, lambda *a, **k: (_ for _ in ()).throw(error))
    return breaks


@pytest.mark.parametrize("error", [
    ServerSelectionTimeoutError("no primary"), AutoReconnect("reset"), NetworkTimeout("slow"),
    WTimeoutError("majority not reached"),
])
@pytest.mark.parametrize("method, url, body", [
    ("post", "/data", {"source": "s", "payload": {}}),
    ("get", "/data", None),
    ("get", "/data/" + "0" * 24, None),
    ("post", "/data/batch", {"records": [{"source": "s", "payload": {}}]}),
    ("get", "/readyz", None),
])
def test_database_unavailable_is_503_with_retry_after(client, broken, error, method, url, body):
    broken(error)
    response = getattr(client, method)(url, json=body)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.get_json()["code"] == 503


def test_healthz_does_not_touch_the_database(client, broken):
    broken(ServerSelectionTimeoutError("down"))
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_duplicate_key_is_409(client, broken):
    broken(DuplicateKeyError("E11000"))
    assert client.post("/data", json={"source": "s", "payload": {}}).status_code == 409


def test_unexpected_exception_is_500_without_internals(client, broken, caplog):
    broken(OperationFailure("secret internals: collection scan refused"))
    response = client.get("/data")
    assert response.status_code == 500
    body = response.get_json()
    assert {k: body[k] for k in ("code", "status")} == {"code": 500, "status": "Internal Server Error"}
    assert set(body) == {"code", "status", "request_id"}
    assert "secret internals" not in response.get_data(as_text=True)
    logged = [r for r in caplog.records if r.getMessage() == "unhandled exception"]
    assert logged[0].error == "OperationFailure" and "data.py" in logged[0].stack
    assert "secret internals" not in caplog.text


def test_unknown_route_is_json_404(client):
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert response.is_json


@pytest.mark.parametrize("method, url", [("delete", "/data"), ("put", "/data/" + "0" * 24),
                                         ("put", "/data/batch"), ("post", "/healthz")])
def test_wrong_method_is_405_with_allow(client, method, url):
    response = getattr(client, method)(url)
    assert response.status_code == 405
    assert response.is_json
    assert response.headers["Allow"]
