"""GET /data/<id> is cacheable (records never change); pages and errors are not."""
from __future__ import annotations

import pytest

IMMUTABLE = "private, max-age=31536000, immutable"


@pytest.fixture
def stored(post, record):
    """The id of a stored record."""
    return post(record).get_json()["id"]


def test_a_record_has_a_strong_etag_and_may_be_kept_by_a_private_cache(client, stored):
    response = client.get(f"/data/{stored}")
    etag = response.headers["ETag"]
    assert response.status_code == 200 and etag.startswith('"') and not etag.startswith("W/")
    assert response.headers["Cache-Control"] == IMMUTABLE
    assert client.get(f"/data/{stored}").headers["ETag"] == etag  # stable across reads


def test_if_none_match_with_the_tag_is_304_without_a_body(client, stored):
    etag = client.get(f"/data/{stored}").headers["ETag"]
    for header in (etag, f'"other", {etag}', "*"):
        response = client.get(f"/data/{stored}", headers={"If-None-Match": header})
        assert response.status_code == 304 and response.data == b""
        assert response.headers["ETag"] == etag and response.headers["Cache-Control"] == IMMUTABLE


def test_another_tag_gets_the_record(client, stored):
    response = client.get(f"/data/{stored}", headers={"If-None-Match": '"stale"'})
    assert response.status_code == 200 and response.get_json()["id"] == stored


def test_different_records_have_different_tags(client, post, record, stored):
    other = post({**record, "payload": {"amount": 1}}).get_json()["id"]
    assert client.get(f"/data/{stored}").headers["ETag"] != client.get(f"/data/{other}").headers["ETag"]


def test_pages_errors_and_writes_are_never_stored(client, post, record, stored):
    for response in (client.get("/data"), client.get("/data/feed"), client.get("/data/" + "0" * 24),
                     client.get("/data/nope"), post(record)):
        assert response.headers["Cache-Control"] == "no-store"
        assert "ETag" not in response.headers


def test_the_openapi_document_names_the_304_and_the_headers(client):
    operation = client.get("/openapi.json").get_json()["paths"]["/data/{record_id}"]["get"]
    assert "304" in operation["responses"]
    assert {"ETag", "Cache-Control"} <= set(operation["responses"]["200"]["headers"])
