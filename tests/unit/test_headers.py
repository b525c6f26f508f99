"""Security headers and opt-in CORS."""
from __future__ import annotations

import pytest

from service.config import ConfigError


def test_api_responses_are_not_cached_or_sniffed(client):
    response = client.get("/data")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")


def test_docs_get_a_policy_that_allows_only_their_own_scripts(client):
    policy = client.get("/docs").headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-eval" not in policy
    assert "no-store" not in client.get("/docs/assets/swagger-ui.css").headers.get("Cache-Control", "")


def test_cors_is_off_by_default(client):
    response = client.get("/data", headers={"Origin": "https://app.example"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_cors_allows_only_listed_origins(make_app):
    client = make_app(CORS_ORIGINS="https://app.example").test_client()
    allowed = client.options("/data", headers={"Origin": "https://app.example",
                                               "Access-Control-Request-Method": "POST"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example"
    other = client.get("/data", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_cors_origins_must_be_urls(make_app):
    with pytest.raises(ConfigError, match="CORS_ORIGINS"):
        make_app(CORS_ORIGINS="app.example")
