"""Failures answer JSON with the right status and no internals."""
from __future__ import annotations

import pytest
from bson import ObjectId
from pymongo.errors import (
    AutoReconnect, BulkWriteError, DuplicateKeyError, ExecutionTimeout, NetworkTimeout, OperationFailure,
    ServerSelectionTimeoutError, WaitQueueTimeoutError, WriteConcernError, WTimeoutError,
)

from service.repository import ID_INDEX, SOURCE_INDEX


@pytest.fixture
def broken(app, monkeypatch):
    """Make every repository method raise the given exception."""
    def breaks(error: Exception):
        repo = app.extensions["mongodb"]["repository"]
        for name in ("insert", "insert_many", "insert_idempotent", "insert_many_idempotent", "get", "page",
                     "ping"):
            monkeypatch.setattr(repo, name, lambda *a, **k: (_ for _ in ()).throw(error))
    return breaks


EVERY_DATABASE_ROUTE = [
    ("post", "/data", {"source": "s", "payload": {}}, {}),
    ("post", "/data", {"source": "s", "payload": {}}, {"Idempotency-Key": "k"}),
    ("get", "/data", None, {}),
    ("get", "/data/" + "0" * 24, None, {}),
    ("post", "/data/batch", {"records": [{"source": "s", "payload": {}}]}, {}),
    ("post", "/data/batch", {"records": [{"source": "s", "payload": {}}]}, {"Idempotency-Key": "k"}),
    ("get", "/readyz", None, {}),
]


@pytest.mark.parametrize("error", [
    ServerSelectionTimeoutError("no primary"), AutoReconnect("reset"), NetworkTimeout("slow"),
    WaitQueueTimeoutError("pool exhausted"), WTimeoutError("majority not reached", 64),
    WriteConcernError("write concern", 100), ExecutionTimeout("maxTimeMS expired", 50),
    OperationFailure("operation exceeded time limit", 50),
    BulkWriteError({"writeErrors": [], "writeConcernErrors": [{"code": 100, "errmsg": "no majority"}]}),
    BulkWriteError({"writeErrors": [{"index": 0, "code": 50, "errmsg": "timed out"}]}),
    BulkWriteError({"writeErrors": [{"index": 0, "code": 11602, "errmsg": "stepping down"},
                                    {"index": 1, "code": 11000, "errmsg": "duplicate"}]}),
    OperationFailure("exceeded time limit", 262),
], ids=lambda e: f"{type(e).__name__}-{getattr(e, 'code', '')}")
@pytest.mark.parametrize("method, url, body, headers", EVERY_DATABASE_ROUTE)
def test_database_unavailable_is_503_with_retry_after(client, broken, error, method, url, body, headers):
    """One mapping on every route: what a retry can cure is a 503."""
    broken(error)
    response = getattr(client, method)(url, json=body, headers=headers)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.get_json()["code"] == 503


def test_healthz_does_not_touch_the_database(client, broken):
    broken(ServerSelectionTimeoutError("down"))
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_duplicate_key_is_409(client, broken):
    broken(DuplicateKeyError("E11000"))
    assert client.post("/data", json={"source": "s", "payload": {}}).status_code == 409


def test_unexpected_database_error_logs_its_code_and_name(client, broken, caplog):
    broken(OperationFailure("secret internals", 13, {"code": 13, "codeName": "Unauthorized"}))
    assert client.get("/data").status_code == 500
    logged = [r for r in caplog.records if r.getMessage() == "unhandled exception"][0]
    assert (logged.code, logged.code_name) == (13, "Unauthorized")
    assert "secret internals" not in caplog.text


def test_a_network_failure_is_logged_with_the_drivers_message(client, broken, caplog):
    """It names the server and the timeouts: what an operator needs, and no stored value."""
    broken(AutoReconnect("db:27017: connection closed (configured timeouts: timeoutMS: 21.5ms)"))
    assert client.get("/data").status_code == 503
    logged = [r for r in caplog.records if r.getMessage() == "database unavailable: AutoReconnect"][0]
    assert logged.detail == "db:27017: connection closed (configured timeouts: timeoutMS: 21.5ms)"


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


# /data/batch also matches /data/<record_id>, so GET is allowed there (and answers 404).
@pytest.mark.parametrize("method, url, allowed", [
    ("delete", "/data", "GET, HEAD, OPTIONS, POST"),
    ("put", "/data/" + "0" * 24, "GET, HEAD, OPTIONS"),
    ("put", "/data/batch", "GET, HEAD, OPTIONS, POST"),
    ("post", "/healthz", "GET, HEAD, OPTIONS"),
])
def test_wrong_method_is_405_with_allow(client, method, url, allowed):
    response = getattr(client, method)(url)
    assert response.status_code == 405
    assert response.is_json
    assert response.headers["Allow"] == allowed


def drop_index(app, index):
    with app.app_context():
        app.extensions["mongodb"]["repository"].records.drop_index(index)


@pytest.mark.parametrize("index", [SOURCE_INDEX, ID_INDEX])
def test_readiness_names_init_db_when_an_index_is_missing(app, client, index):
    drop_index(app, index)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "init-db" in response.get_json()["message"] and index in response.get_json()["message"]


@pytest.mark.parametrize("index, url, other_url", [
    (SOURCE_INDEX, "/data?source=s", "/data"),
    (ID_INDEX, f"/data/{ObjectId()}", "/data?source=s"),
])
def test_a_query_that_needs_a_missing_index_is_the_same_503(app, client, monkeypatch, index, url, other_url):
    drop_index(app, index)
    records = app.extensions["mongodb"]["repository"].records
    real_find = records.find

    def find_like_mongodb(*args, **kwargs):
        cursor = real_find(*args, **kwargs)
        # MongoDB refuses a hint naming no index with BadValue (mongomock ignores hints).
        monkeypatch.setattr(cursor, "hint", lambda index: (_ for _ in ()).throw(
            OperationFailure("hint provided does not correspond to an existing index", 2)))
        return cursor
    monkeypatch.setattr(records, "find", find_like_mongodb)
    response = client.get(url)
    assert response.status_code == 503
    assert response.get_json()["message"] == client.get("/readyz").get_json()["message"]
    client.post("/data", json={"source": "s", "payload": {}})
    # The same refusal on a query whose index is there is not a missing index.
    assert client.get(other_url).status_code == 500
