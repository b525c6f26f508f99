"""Settings: defaults, validation, and one clear line per bad variable."""
from __future__ import annotations

import pytest

from service import create_app
from service.config import ConfigError, Settings


def test_defaults():
    settings = Settings.from_env({"MONGODB_URI": "mongodb://db:27017"})
    assert settings.database == "ingest" and settings.collection == "records"
    assert settings.write_concern == "majority"
    assert settings.max_content_length == 2**20 and settings.payload_max_bytes == 64 * 2**10
    assert settings.payload_max_depth == 32 and settings.batch_max_records == 1000
    assert settings.api_keys_file is None and not settings.in_memory


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
])
def test_invalid_setting_stops_with_one_line_naming_it(environ, variable):
    with pytest.raises(ConfigError) as error:
        Settings.from_env(environ)
    message = str(error.value)
    assert message.startswith(f"configuration error: {variable} ") and "\n" not in message
    assert error.value.code == message  # SystemExit prints it and exits with status 1


def test_write_concern_accepts_a_member_count():
    assert Settings.from_env({"MONGODB_URI": "memory://", "MONGODB_WRITE_CONCERN": "2"}).write_concern == 2


def test_create_app_validates_before_building(monkeypatch):
    monkeypatch.delenv("MONGODB_URI", raising=False)
    with pytest.raises(ConfigError, match="MONGODB_URI is required"):
        create_app()


def test_memory_store_warns(caplog):
    create_app({"MONGODB_URI": "memory://"})
    assert "memory://" in caplog.text


def test_real_uri_builds_a_lazy_client_with_bounded_timeouts():
    app = create_app({"MONGODB_URI": "mongodb://127.0.0.1:1/?directConnection=true",
                      "MONGODB_TIMEOUT_MS": "150"})
    client = app.extensions["mongodb"]["client"]
    options = client.options
    assert options.server_selection_timeout == 0.15
    assert options.pool_options.max_pool_size == 20
    assert options.retry_writes
    repo = app.extensions["mongodb"]["repository"]
    assert repo.records.write_concern.document == {"w": "majority", "j": True}
    assert app.test_client().get("/readyz").status_code == 503
