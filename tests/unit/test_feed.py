"""GET /data/feed: every record once, oldest first, behind the settle horizon."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from bson import ObjectId

from service.db import repository
from service.repository import to_document
from tests.factories import Clock

NOW = datetime.now(timezone.utc)


def settled(app, count: int, source: str = "s", start: datetime = NOW - timedelta(hours=1)) -> list[str]:
    """Store `count` records whose ids are older than any settle window; return their ids, oldest first."""
    documents = [to_document({"source": source, "payload": {"i": i}, "tags": [], "timestamp": None},
                             ObjectId.from_datetime(start + timedelta(seconds=i))) for i in range(count)]
    with app.app_context():
        repository().records.insert_many(documents)
    return [str(d["_id"]) for d in documents]


def follow(client, pages: int = 1000, **params) -> tuple[list[str], str]:
    """Follow `next` until a page comes back empty; return the ids seen and the last checkpoint."""
    ids, token = [], None
    for _ in range(pages):
        query = {**params, **({"after": token} if token else {})}
        response = client.get("/data/feed", query_string=query)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        ids += [item["id"] for item in body["items"]]
        token = body["next"]
        if not body["items"]:
            return ids, token
    raise AssertionError("the feed did not end")


def test_a_walk_returns_every_settled_record_once_oldest_first(client, app):
    ids = settled(app, 25) + settled(app, 5, source="other", start=NOW - timedelta(minutes=30))
    seen, _ = follow(client, limit=4)
    assert seen == sorted(ids) == ids


def test_a_page_holds_at_most_limit_records_with_the_full_record(client, app):
    settled(app, 3)
    body = client.get("/data/feed?limit=2").get_json()
    assert len(body["items"]) == 2
    assert set(body["items"][0]) == {"id", "source", "payload", "tags", "timestamp", "created_at"}
    assert client.get("/data/feed").get_json()["items"][2]["payload"] == {"i": 2}


def test_next_is_present_on_an_empty_feed_and_resumes_where_it_stopped(client, app):
    empty = client.get("/data/feed").get_json()
    assert empty["items"] == [] and empty["next"]
    ids = settled(app, 3)
    later = client.get("/data/feed", query_string={"after": empty["next"]}).get_json()
    assert [item["id"] for item in later["items"]] == ids
    again = client.get("/data/feed", query_string={"after": later["next"]}).get_json()
    assert again["items"] == [] and again["next"] == later["next"]


def test_a_checkpoint_can_be_read_again_with_the_same_answer(client, app):
    settled(app, 6)
    first = client.get("/data/feed?limit=3").get_json()
    twice = [client.get("/data/feed", query_string={"limit": 3, "after": first["next"]}).get_json()
             for _ in range(2)]
    assert twice[0] == twice[1] and twice[0]["items"][0]["payload"] == {"i": 3}


def test_source_selects_one_producer(client, app):
    settled(app, 4, source="a")
    b = settled(app, 3, source="b", start=NOW - timedelta(minutes=50))
    seen, _ = follow(client, limit=2, source="b")
    assert seen == b


def test_since_starts_at_the_first_record_created_at_or_after_it(client, app):
    ids = settled(app, 10, start=datetime(2024, 1, 1, tzinfo=timezone.utc))
    body = client.get("/data/feed?since=2024-01-01T00:00:04Z").get_json()
    assert [item["id"] for item in body["items"]] == ids[4:]
    later = client.get("/data/feed?since=2024-01-01T01:00:00%2B01:00&limit=1").get_json()
    assert [item["id"] for item in later["items"]] == ids[:1]


def test_since_in_the_future_returns_nothing_yet_and_a_checkpoint_there(client, app):
    settled(app, 2)
    body = client.get("/data/feed?since=2099-01-01T00:00:00Z").get_json()
    assert body["items"] == []
    assert client.get("/data/feed", query_string={"after": body["next"]}).get_json()["items"] == []


def test_a_record_is_served_only_once_its_id_is_older_than_the_window(make_app):
    app = make_app(FEED_SETTLE_SECONDS="30")
    client = app.test_client()
    fresh = client.post("/data", json={"source": "s", "payload": {}}).get_json()["id"]
    assert client.get("/data/feed").get_json()["items"] == []
    with app.app_context():
        repository().clock = Clock(timedelta(seconds=31))
    assert [item["id"] for item in client.get("/data/feed").get_json()["items"]] == [fresh]


def test_the_feed_is_not_cached(client, app):
    settled(app, 1)
    assert client.get("/data/feed").headers["Cache-Control"] == "no-store"


def altered(token: str) -> str:
    return token[:5] + ("A" if token[5] != "A" else "B") + token[6:]


def checkpoint(client, source: str | None = None) -> str:
    query = {"source": source} if source else {}
    return client.get("/data/feed", query_string=query).get_json()["next"]


@pytest.mark.parametrize("query, field", [
    (lambda c: {"color": "red"}, "color"),
    (lambda c: {"limit": "0"}, "limit"),
    (lambda c: {"limit": "1001"}, "limit"),
    (lambda c: {"limit": "ten"}, "limit"),
    (lambda c: {"source": ""}, "source"),
    (lambda c: {"source": "bad source"}, "source"),
    (lambda c: {"since": "2024-01-01"}, "since"),
    (lambda c: {"since": "2024-01-01T00:00:00"}, "since"),
    (lambda c: {"after": "not-a-token"}, "after"),
    (lambda c: {"after": ""}, "after"),
    (lambda c: {"after": altered(checkpoint(c))}, "after"),
    (lambda c: {"after": checkpoint(c, "a"), "source": "b"}, "after"),
    (lambda c: {"after": checkpoint(c, "a")}, "after"),
    (lambda c: {"after": checkpoint(c), "source": "a"}, "after"),
    (lambda c: {"after": c.get("/data?limit=1").get_json()["next_cursor"]}, "after"),
    (lambda c: {"after": checkpoint(c), "since": "2024-01-01T00:00:00Z"}, "after"),
    (lambda c: {"after": checkpoint(c), "since": "2024-01-01T00:00:00Z"}, "since"),
], ids=["unknown", "limit 0", "limit 1001", "limit text", "empty source", "bad source", "date only",
        "no offset", "garbage token", "empty token", "altered token", "token of another source",
        "token of a source without it", "token without source with one", "page cursor",
        "both starts (after)", "both starts (since)"])
def test_bad_queries_are_422_naming_the_parameter(client, app, query, field):
    settled(app, 2)  # a page cursor exists only when there is a next page
    response = client.get("/data/feed", query_string=query(client))
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["errors"]["query"]


def test_checkpoints_of_another_deployment_are_refused(make_app):
    secret = {"MONGODB_URI": "memory://"}
    one = make_app(CURSOR_SECRET="a" * 32, **secret).test_client()
    other = make_app(CURSOR_SECRET="b" * 32, **secret).test_client()
    token = one.get("/data/feed").get_json()["next"]
    assert one.get("/data/feed", query_string={"after": token}).status_code == 200
    assert other.get("/data/feed", query_string={"after": token}).status_code == 422


def test_the_feed_is_in_the_openapi_document(client):
    operation = client.get("/openapi.json").get_json()["paths"]["/data/feed"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"limit", "source", "after", "since"}
    assert {"200", "422", "503"} <= set(operation["responses"])
