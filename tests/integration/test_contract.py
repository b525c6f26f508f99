"""The HTTP contract, driven over the wire against the real server."""
from __future__ import annotations

import http.client
import json
import threading
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest

from . import expect, harness
from ..cases import INVALID_RECORDS, as_json, nested, with_size

pytestmark = pytest.mark.blackbox

A_VALID_ID_NOBODY_HAS = "000000000000000000000000"


def test_post_stores_a_record_and_answers_201_with_location(api, source):
    before = datetime.now(timezone.utc).replace(microsecond=0)
    response = api.post("/data", json={"source": source, "payload": {"amount": 42}, "tags": ["a"]})
    created = expect.record(response, 201)
    assert response.headers["Location"].endswith(f"/data/{created['id']}")
    assert created["source"] == source
    assert created["payload"] == {"amount": 42}
    assert created["tags"] == ["a"]
    created_at = expect.utc(created["created_at"])
    assert before - timedelta(seconds=5) <= created_at <= before + timedelta(seconds=60)
    # With no timestamp sent, the time of receipt is stored.
    assert abs(expect.utc(created["timestamp"]) - expect.utc(created["created_at"])) < timedelta(seconds=2)


def test_location_serves_the_stored_record(api, source):
    response = api.post("/data", json={"source": source, "payload": {"k": "v"}})
    created = expect.record(response, 201)
    fetched = expect.record(api.get(response.headers["Location"].removeprefix(api.base_url)), 200)
    assert fetched == created


def test_tags_default_to_an_empty_list(api, source):
    assert api.create(source)["tags"] == []


@pytest.mark.parametrize("record_id", [A_VALID_ID_NOBODY_HAS, "not-an-id", "z" * 24, "0" * 25])
def test_unknown_or_malformed_id_is_404(api, record_id):
    expect.error(api.get(f"/data/{record_id}"), 404)


def test_unknown_route_is_404_json(api):
    expect.error(api.get("/no/such/route"), 404)


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("DELETE", "/data", {"GET", "POST"}),
    ("PUT", "/data", {"GET", "POST"}),
    ("PATCH", f"/data/{A_VALID_ID_NOBODY_HAS}", {"GET"}),
    ("POST", "/healthz", {"GET"}),
])
def test_wrong_method_is_405_with_allow(api, method, path, allowed):
    response = api.request(method, path, json={})
    expect.error(response, 405)
    assert allowed <= {m.strip() for m in response.headers["Allow"].split(",")}


def test_body_over_the_limit_is_413(api, source):
    # The server answers from Content-Length alone (default limit 1 MiB), before the body
    # arrives: only the headers are sent, as a client waiting for 100-continue would. Sending
    # the whole body races the server closing the socket behind its answer.
    url = urlsplit(api.base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=api.TIMEOUT)
    try:
        connection.putrequest("POST", "/data")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(2**20 + 1))
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 413
        assert response.getheader("Content-Type") == "application/json"
        assert json.loads(response.read())["code"] == 413
    finally:
        connection.close()


@pytest.mark.parametrize("headers", [
    {"Content-Type": "text/plain"},
    {"Content-Type": "application/x-www-form-urlencoded"},
    {"Content-Type": ""},
])
def test_body_not_declared_as_json_is_415(api, source, headers):
    body = f'{{"source": "{source}", "payload": {{}}}}'
    expect.error(api.post("/data", data=body, headers=headers), 415)


@pytest.mark.parametrize("body", [
    b"{",
    b"",
    b'{"source": "s", "payload": {"x": NaN}}',
    b'{"source": "s", "payload": {"x": Infinity}}',
    b'{"source": "s", "payload": {"x": -Infinity}}',
    b'{"source": "s", "payload": {}} trailing',
    b'{"source": "s", "payload": {"x": "\xff"}}',
    b'{"source": "s", "payload": {"x": "\\ud800"}}',
], ids=["truncated", "empty", "nan", "infinity", "minus-infinity", "trailing", "not-utf8", "lone-surrogate"])
def test_body_that_is_not_standard_json_is_400(api, body):
    expect.error(api.post("/data", data=body, headers={"Content-Type": "application/json"}), 400)


@pytest.mark.parametrize(("body", "path"), INVALID_RECORDS, ids=[p for _, p in INVALID_RECORDS])
def test_invalid_record_is_422_naming_the_field(api, body, path):
    expect.error(api.post("/data", data=as_json(body), headers={"Content-Type": "application/json"}),
                 422, path)


@pytest.mark.parametrize("body", [
    {"payload": {}, "source": "s" * 128},
    {"payload": {}, "tags": ["t" * 64] * 32},
    {"payload": nested(32)},
    {"payload": with_size(64 * 1024)},
    {"payload": {}, "source": "a.b_c:d-E9"},
], ids=["source-128", "tags-32x64", "depth-32", "payload-64KiB", "source-punctuation"])
def test_limits_are_inclusive(api, source, body):
    record = {"source": source, **body}
    created = expect.record(api.post("/data", json=record), 201)
    assert {k: created[k] for k in body} == body


@pytest.mark.parametrize(("params", "name"), [
    ({"limit": 0}, "limit"),
    ({"limit": 1001}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"cursor": "not-a-cursor"}, "cursor"),
    ({"cursor": "A" * 32}, "cursor"),
    ({"since": "2024-05-01T12:00:00"}, "since"),
    ({"until": "tomorrow"}, "until"),
    ({"since": "2024-05-02T00:00:00Z", "until": "2024-05-01T00:00:00Z"}, "until"),
    ({"source": "bad source"}, "source"),
    ({"skip": 10}, "skip"),
    ({"sort": "asc"}, "sort"),
])
def test_invalid_query_is_422_naming_the_parameter(api, params, name):
    expect.error(api.get("/data", params=params), 422, f"query.{name}")


@pytest.mark.parametrize("params", [
    {"since": "2200-01-01T00:00:00Z"},
    {"until": "1960-01-01T00:00:00Z"},
    {"since": "1900-01-01T00:00:00Z", "until": "2200-01-01T00:00:00Z"},
], ids=["since-after-2106", "until-before-1970", "both-outside"])
def test_time_bounds_beyond_what_ids_can_hold_are_answered(api, source, params):
    """ObjectId times span 1970-2106: bounds outside must give a page or a 422, never a 500."""
    api.create(source)
    response = api.get("/data", params={"source": source, **params})
    if response.status_code == 422:
        expect.error(response, 422, "query")
        return
    assert response.status_code == 200, response.text
    expected = 1 if "since" in params and "until" in params else 0
    assert len(response.json()["items"]) == expected


def first_cursor(api, source) -> str:
    """A valid cursor: the first page of a two-record source at limit 1."""
    api.create(source)
    api.create(source)
    page = api.get("/data", params={"source": source, "limit": 1}).json()
    assert page["next_cursor"], page
    return page["next_cursor"]


def test_tampered_cursor_is_422(api, source):
    cursor = first_cursor(api, source)
    for position in (0, len(cursor) // 2, len(cursor) - 1):
        flipped = "B" if cursor[position] != "B" else "C"
        tampered = cursor[:position] + flipped + cursor[position + 1:]
        response = api.get("/data", params={"source": source, "cursor": tampered})
        expect.error(response, 422, "query.cursor")


def test_cursor_of_another_query_is_422(api, source):
    cursor = first_cursor(api, source)
    response = api.get("/data", params={"source": source + "-other", "cursor": cursor})
    expect.error(response, 422, "query.cursor")
    expect.error(api.get("/data", params={"cursor": cursor}), 422, "query.cursor")


def test_next_cursor_is_null_exactly_on_the_last_page(api, source):
    for _ in range(3):
        api.create(source)
    full = api.get("/data", params={"source": source, "limit": 3}).json()
    assert len(full["items"]) == 3 and full["next_cursor"] is None
    first = api.get("/data", params={"source": source, "limit": 2}).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    last = api.get("/data", params={"source": source, "limit": 2, "cursor": first["next_cursor"]}).json()
    assert len(last["items"]) == 1 and last["next_cursor"] is None


def test_limit_defaults_to_100(api, source):
    for start in range(0, 101, 50):
        records = [{"source": source, "payload": {"i": i}} for i in range(start, min(start + 50, 101))]
        assert api.post("/data/batch", json={"records": records}).status_code == 201
    page = api.get("/data", params={"source": source}).json()
    assert len(page["items"]) == 100 and page["next_cursor"]


def test_cursor_walk_is_strictly_descending_while_records_are_inserted(api, source):
    existing = [api.create(source, {"i": i})["id"] for i in range(30)]
    first = api.get("/data", params={"source": source, "limit": 7}).json()
    stop, started = threading.Event(), threading.Event()
    writer = harness.Client(api.base_url)  # a session of its own: sessions are not thread-safe

    def insert_meanwhile():
        while not stop.is_set():
            writer.create(source, {"new": True})
            started.set()

    inserter = threading.Thread(target=insert_meanwhile)
    inserter.start()
    try:
        assert started.wait(10), "nothing could be inserted during the walk"
        walked = first["items"] + api.walk(limit=7, source=source, cursor=first["next_cursor"])
    finally:
        stop.set()
        inserter.join(30)
    ids = [item["id"] for item in walked]
    # New records sort above the first page, so the walk neither repeats nor skips any.
    assert ids == sorted(existing, reverse=True), "a record was missed, repeated or out of order"
    assert all(a > b for a, b in zip(ids, ids[1:]))


def test_source_filter_returns_only_that_source(api, source):
    mine = {api.create(source)["id"] for _ in range(3)}
    api.create(source + "-other")
    walked = api.walk(source=source)
    assert {item["id"] for item in walked} == mine
    assert {item["source"] for item in walked} == {source}


def test_since_and_until_bound_created_at(api, source):
    older = [api.create(source)["id"] for _ in range(2)]
    # created_at has one-second resolution: two seconds apart, a bound can fall between.
    time.sleep(2)
    newer = [api.create(source)["id"] for _ in range(2)]
    older_times = [expect.utc(r["created_at"]) for r in api.walk(source=source) if r["id"] in older]
    older_second = max(older_times)
    between = (older_second + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

    assert [r["id"] for r in api.walk(source=source, since=between)] == newer[::-1]
    assert [r["id"] for r in api.walk(source=source, until=between)] == older[::-1]
    both = api.walk(source=source, since=min(older_times).isoformat(), until=between)
    assert [r["id"] for r in both] == older[::-1]
    assert api.walk(source=source, since=between, until=between) == []


def test_probes_answer_200(api):
    assert api.get("/healthz").status_code == 200
    assert api.get("/readyz").status_code == 200


def test_openapi_documents_every_route_and_status(api):
    response = api.get("/openapi.json")
    assert response.status_code == 200 and expect.is_json(response)
    document = response.json()
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]
    assert {"/data", "/data/{record_id}", "/data/batch", "/healthz", "/readyz"} <= set(paths)
    documented = set(paths["/data"]["post"]["responses"])
    assert {"201", "200", "400", "409", "413", "415", "422", "503"} <= documented
    assert {"200", "422", "503"} <= set(paths["/data"]["get"]["responses"])
    assert {"200", "404"} <= set(paths["/data/{record_id}"]["get"]["responses"])


def test_swagger_ui_is_served_without_a_cdn(api):
    page = api.get("/docs")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "cdn" not in page.text.lower() and "unpkg" not in page.text.lower()
