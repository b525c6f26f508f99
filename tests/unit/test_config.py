"""Settings: defaults, validation, and one clear line per bad variable."""
from __future__ import annotations

import socket
import time

import pytest

from service import create_app
from service.config import ConfigError, Settings

SECRET = "s" * 32
REAL = {"MONGODB_URI": "mongodb://db:27017", "CURSOR_SECRET": SECRET}


def test_defaults():
    settings = Settings.from_env(REAL)
    assert settings.database == "ingest" and settings.collection == "records"
    assert settings.write_concern == "majority"
    assert settings.max_content_length == 2**20 and settings.payload_max_bytes == 64 * 2**10
    assert settings.payload_max_depth == 32 and settings.batch_max_records == 1000
    assert settings.api_keys_file is None and not settings.in_memory
    assert settings.request_timeout_ms == 5000 and settings.cursor_secret == SECRET


@pytest.mark.parametrize("environ, variable", [
    ({}, "MONGODB_URI"),
    ({"MONGODB_URI": ""}, "MONGODB_URI"),
    ({"MONGODB_URI": "postgres://x"}, "MONGODB_URI"),
    ({"MONGODB_URI": "memory://", "MONGODB_TIMEOUT_MS": "soon"}, "MONGODB_TIMEOUT_MS"),
    ({"MONGODB_URI": "memory://", "MONGODB_TIMEOUT_MS": "5"}, "MONGODB_TIMEOUT_MS"),
    ({"MONGODB_URI": "memory://", "MAX_CONTENT_LENGTH": "-1"}, "MAX_CONTENT_LENGTH"),
    ({"MONGODB_URI": "memory://", "MONGODB_WRITE_CONCERN": "0"}, "MONGODB_WRITE_CONCERN"),
    ({"MONGODB_URI": "memory://", "MONGODB_COLLECTION": "  "}, "MONGODB_COLLECTION"),
    ({"MONGODB_URI": "memory://", "LOG_LEVEL": "chatty"}, "LOG_LEVEL"),
    ({"MONGODB_URI": "memory://", "MONGODB_REQUEST_TIMEOUT_MS": "99"}, "MONGODB_REQUEST_TIMEOUT_MS"),
    ({"MONGODB_URI": "mongodb://db"}, "CURSOR_SECRET"),
    ({"MONGODB_URI": "mongodb://db", "CURSOR_SECRET": ""}, "CURSOR_SECRET"),
    ({"MONGODB_URI": "mongodb://db", "CURSOR_SECRET": "s" * 31}, "CURSOR_SECRET"),
    ({"MONGODB_URI": "memory://", "CURSOR_SECRET": "short"}, "CURSOR_SECRET"),
    ({"MONGODB_URI": "mongodb://db", "CURSOR_SECRET": SECRET + ",short"}, "CURSOR_SECRET"),
])
def test_invalid_setting_stops_with_one_line_naming_it(environ, variable):
    with pytest.raises(ConfigError) as error:
        Settings.from_env(environ)
    message = str(error.value)
    assert message.startswith(f"configuration error: {variable} ") and "\n" not in message
    assert error.value.code == message  # SystemExit prints it and exits with status 1


def test_write_concern_accepts_a_member_count():
    assert Settings.from_env({"MONGODB_URI": "memory://", "MONGODB_WRITE_CONCERN": "2"}).write_concern == 2


def test_cursor_secret_is_required_outside_the_memory_store():
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"MONGODB_URI": "mongodb://db"})
    assert "CURSOR_SECRET is required unless MONGODB_URI is memory://" in str(error.value)
    assert Settings.from_env({"MONGODB_URI": "memory://"}).cursor_secret == ""


def test_an_explicit_environment_is_the_whole_environment(monkeypatch):
    """Tests pass their settings: the caller's exported variables never leak in."""
    for name, value in (("MONGODB_DATABASE", "exported"), ("CORS_ORIGINS", "https://x.example"),
                        ("API_KEYS_FILE", "/nonexistent/keys"), ("CURSOR_SECRET", "short")):
        monkeypatch.setenv(name, value)
    app = create_app({"MONGODB_URI": "memory://"})
    settings = app.config["SETTINGS"]
    assert (settings.database, settings.cors_origins, settings.api_keys_file) == ("ingest", (), None)


def test_create_app_validates_before_building(monkeypatch):
    monkeypatch.delenv("MONGODB_URI", raising=False)
    with pytest.raises(ConfigError, match="MONGODB_URI is required"):
        create_app()


def test_memory_store_warns(caplog):
    create_app({"MONGODB_URI": "memory://"})
    assert "memory://" in caplog.text


def test_real_uri_builds_a_lazy_client_with_bounded_timeouts():
    app = create_app({"MONGODB_URI": "mongodb://127.0.0.1:1/?directConnection=true",
                      "MONGODB_TIMEOUT_MS": "150", "CURSOR_SECRET": SECRET})
    client = app.extensions["mongodb"]["client"]
    options = client.options
    assert options.server_selection_timeout == 0.15
    assert options.pool_options.max_pool_size == 20
    assert options.retry_writes
    repo = app.extensions["mongodb"]["repository"]
    assert repo.records.write_concern.document == {"w": "majority", "j": True}
    assert app.test_client().get("/readyz").status_code == 503


def test_a_request_gets_no_more_database_time_than_its_budget(unused_tcp_port_listener):
    """A database that accepts and never answers: the 200 ms budget ends the request,
    long before the 10 s server selection timeout would."""
    app = create_app({"MONGODB_URI": f"mongodb://127.0.0.1:{unused_tcp_port_listener}/?directConnection=true",
                      "MONGODB_TIMEOUT_MS": "10000", "MONGODB_REQUEST_TIMEOUT_MS": "200",
                      "CURSOR_SECRET": SECRET})
    started = time.monotonic()
    response = app.test_client().get("/data/" + "0" * 24)
    assert response.status_code == 503
    assert time.monotonic() - started < 5


@pytest.fixture
def unused_tcp_port_listener():
    """A loopback port that accepts connections and never says a word."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def test_the_feed_window_defaults_to_the_request_budget_plus_a_skew_allowance():
    assert Settings.from_env(REAL).feed_settle_seconds == 10
    assert Settings.from_env({**REAL, "MONGODB_REQUEST_TIMEOUT_MS": "1500"}).feed_settle_seconds == 7


@pytest.mark.parametrize("environ, accepted", [
    ({**REAL, "FEED_SETTLE_SECONDS": "6"}, True),
    ({**REAL, "FEED_SETTLE_SECONDS": "5"}, False),
    ({**REAL, "MONGODB_REQUEST_TIMEOUT_MS": "1000", "FEED_SETTLE_SECONDS": "2"}, True),
    ({**REAL, "MONGODB_REQUEST_TIMEOUT_MS": "1001", "FEED_SETTLE_SECONDS": "2"}, False),
    ({"MONGODB_URI": "memory://", "FEED_SETTLE_SECONDS": "1"}, True),
    ({"MONGODB_URI": "memory://", "FEED_SETTLE_SECONDS": "0"}, False),
    ({"MONGODB_URI": "memory://", "FEED_SETTLE_SECONDS": "soon"}, False),
])
def test_a_feed_window_shorter_than_the_write_path_allows_is_refused(environ, accepted):
    if accepted:
        assert Settings.from_env(environ).feed_settle_seconds == int(environ["FEED_SETTLE_SECONDS"])
        return
    with pytest.raises(ConfigError, match="^configuration error: FEED_SETTLE_SECONDS "):
        Settings.from_env(environ)


@pytest.mark.parametrize("environ, variable, accepted", [
    ({**REAL, "MONGODB_REQUEST_TIMEOUT_MS": "120000", "IDEMPOTENCY_TTL_SECONDS": "60"},
     "IDEMPOTENCY_TTL_SECONDS", False),
    ({**REAL, "MONGODB_REQUEST_TIMEOUT_MS": "120000", "IDEMPOTENCY_TTL_SECONDS": "359"},
     "IDEMPOTENCY_TTL_SECONDS", False),
    ({**REAL, "MONGODB_REQUEST_TIMEOUT_MS": "120000", "IDEMPOTENCY_TTL_SECONDS": "360"}, None, True),
    ({**REAL, "RETENTION_DAYS": "1"}, "IDEMPOTENCY_TTL_SECONDS", False),
    ({**REAL, "RETENTION_DAYS": "1", "IDEMPOTENCY_TTL_SECONDS": "86340"}, None, True),
    ({**REAL, "RETENTION_DAYS": "2"}, None, True),
    ({**REAL, "PAYLOAD_MAX_BYTES": str(2 * 2**20)}, None, True),
    ({**REAL, "PAYLOAD_MAX_BYTES": str(2 * 2**20 + 1)}, "PAYLOAD_MAX_BYTES", False),
])
def test_settings_that_must_agree_are_checked_together(environ, variable, accepted):
    """A key must outlive abandon-after plus a write and expire before its record; a payload's
    BSON must fit the server's document limit."""
    if accepted:
        Settings.from_env(environ)
        return
    with pytest.raises(ConfigError) as error:
        Settings.from_env(environ)
    message = str(error.value)
    assert message.startswith(f"configuration error: {variable} ") and "\n" not in message
