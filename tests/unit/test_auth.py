"""API keys: 401 without a valid key, 403 without the scope, open probes."""
from __future__ import annotations

import os

import pytest

from service.auth import digest, parse_keys
from service.config import ConfigError
from tests.factories import bearer

READER, WRITER, ADMIN = "reader-key-0123456789", "writer-key-0123456789", "admin-key-0123456789"


@pytest.fixture
def key_file(tmp_path):
    """A key file with a read-only, a write-only and a read-write key."""
    path = tmp_path / "api-keys"
    path.write_text(
        "# name sha256 scopes\n\n"
        f"reader {digest(READER).hex()} read\n"
        f"writer {digest(WRITER).hex()} write\n"
        f"admin {digest(ADMIN).hex()} read,write\n"
    )
    return path


@pytest.fixture
def secured(make_app, key_file):
    """A client of an app with API keys configured."""
    return make_app(API_KEYS_FILE=str(key_file)).test_client()


RECORD = {"source": "s", "payload": {}}


@pytest.mark.parametrize("headers, error", [
    ({}, None),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, None),
    ({"Authorization": "Bearer "}, None),
    (bearer("guess"), "invalid_token"),
])
def test_missing_or_unknown_key_is_401_with_a_challenge(secured, headers, error):
    response = secured.get("/data", headers=headers)
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="data-ingest"')
    assert (f'error="{error}"' in challenge) if error else ("error=" not in challenge)


@pytest.mark.parametrize("key, method, status", [
    (READER, "get", 200), (READER, "post", 403),
    (WRITER, "get", 403), (WRITER, "post", 201),
    (ADMIN, "get", 200), (ADMIN, "post", 201),
])
def test_scopes(secured, key, method, status):
    response = getattr(secured, method)("/data", json=RECORD if method == "post" else None,
                                        headers=bearer(key))
    assert response.status_code == status


def test_insufficient_scope_names_the_scope(secured):
    response = secured.post("/data/batch", json={"records": [RECORD]}, headers=bearer(READER))
    assert response.status_code == 403
    assert "write" in response.get_json()["message"]
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


def test_probes_and_docs_stay_open(secured):
    for url in ("/healthz", "/readyz", "/openapi.json", "/docs"):
        assert secured.get(url).status_code == 200


def test_without_keys_data_is_open_and_a_warning_is_logged(make_app, caplog):
    client = make_app().test_client()
    assert client.post("/data", json=RECORD).status_code == 201
    assert "API_KEYS_FILE is not set" in caplog.text


def test_rotated_file_takes_effect_without_restart(secured, key_file):
    assert secured.get("/data", headers=bearer(READER)).status_code == 200
    key_file.write_text(f"newcomer {digest('fresh-key-0123456789').hex()} read\n")
    stat = key_file.stat()
    os.utime(key_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert secured.get("/data", headers=bearer(READER)).status_code == 401
    assert secured.get("/data", headers=bearer("fresh-key-0123456789")).status_code == 200


def test_a_broken_rotation_keeps_the_last_good_keys(secured, key_file, caplog):
    key_file.unlink()
    assert secured.get("/data", headers=bearer(READER)).status_code == 200
    assert "API keys not reloaded" in caplog.text


@pytest.mark.parametrize("text", [
    "reader nothex read",
    f"reader {digest('k').hex()} admin",
    f"reader {digest('k').hex()}",
    "just-a-name",
])
def test_malformed_key_file_fails_at_start_up(make_app, tmp_path, text):
    path = tmp_path / "keys"
    path.write_text(text)
    with pytest.raises(ConfigError, match="API_KEYS_FILE line 1"):
        make_app(API_KEYS_FILE=str(path))


def test_missing_key_file_fails_at_start_up(make_app, tmp_path):
    with pytest.raises(ConfigError, match="API_KEYS_FILE cannot be read"):
        make_app(API_KEYS_FILE=str(tmp_path / "absent"))


def test_new_api_key_prints_a_working_line(app):
    output = app.test_cli_runner().invoke(args=["new-api-key", "billing", "--scopes", "read"]).output
    key = output.split("it is not stored): ")[1].split()[0]
    line = output.split("line for API_KEYS_FILE: ")[1].strip()
    [parsed] = parse_keys(line)
    assert parsed.name == "billing" and parsed.scopes == {"read"} and parsed.digest == digest(key)


def test_openapi_declares_the_bearer_scheme(client):
    spec = client.get("/openapi.json").get_json()
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    operation = spec["paths"]["/data"]["post"]
    assert operation["security"] == [{"bearerAuth": []}]
    assert {"401", "403"} <= set(operation["responses"])
    assert "security" not in spec["paths"]["/healthz"]["get"]


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_a_cors_preflight_needs_no_api_key(make_app, key_file, method):
    """A browser sends the preflight without Authorization; a 401 there fails every call."""
    client = make_app(API_KEYS_FILE=str(key_file), CORS_ORIGINS="https://app.example").test_client()
    preflight = client.options("/data", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "Authorization, Content-Type"})
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    assert client.get("/data", headers={"Origin": "https://app.example"}).status_code == 401
