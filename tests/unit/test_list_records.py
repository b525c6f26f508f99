"""GET /data: newest first, keyset pages, filters, cursor rules."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import pytest
from bson import ObjectId

from service.db import repository


def store(client, count: int, source: str = "s") -> list[str]:
    """POST `count` records and return their ids in creation order."""
    return [client.post("/data", json={"source": source, "payload": {"i": i}}).get_json()["id"]
            for i in range(count)]


def walk(client, **params) -> tuple[list[str], int]:
    """Follow next_cursor to the end; return the ids seen and the number of pages."""
    ids, pages, cursor = [], 0, None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        body = client.get(f"/data?{urlencode(query)}").get_json()
        ids += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return ids, pages


def test_empty_collection_is_an_empty_last_page(client):
    assert client.get("/data").get_json() == {"items": [], "next_cursor": None}


def test_default_page_is_100_newest_first(client):
    ids = store(client, 101)
    body = client.get("/data").get_json()
    assert [item["id"] for item in body["items"]] == ids[::-1][:100]
    assert body["next_cursor"] is not None


def test_walk_returns_every_record_once_in_descending_order(client):
    ids = store(client, 25)
    seen, pages = walk(client, limit=7)
    assert seen == ids[::-1]
    assert pages == 4


def test_next_cursor_is_null_exactly_on_the_last_page(client):
    store(client, 6)
    first = client.get("/data?limit=3").get_json()
    last = client.get(f"/data?limit=3&cursor={first['next_cursor']}").get_json()
    assert first["next_cursor"] is not None
    assert len(last["items"]) == 3 and last["next_cursor"] is None


def test_records_inserted_during_a_walk_do_not_appear_in_it(client):
    ids = store(client, 10)
    page = client.get("/data?limit=4").get_json()
    seen = [item["id"] for item in page["items"]]
    cursor = page["next_cursor"]
    while cursor:
        store(client, 3)  # concurrent producers
        page = client.get(f"/data?limit=4&cursor={cursor}").get_json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
    assert seen == ids[::-1]


def test_source_filter_is_exact(client):
    billing = store(client, 3, "billing")
    store(client, 3, "billing-eu")
    seen, _ = walk(client, source="billing", limit=2)
    assert seen == billing[::-1]


def test_since_and_until_bound_created_at_inclusively(client, app):
    base = datetime(2024, 1, 1, tzinfo=timezone.utc)
    with app.app_context():
        records = repository().records
        for second in range(5):
            oid = ObjectId.from_datetime(base + timedelta(seconds=second))
            records.insert_one({"_id": oid, "source": "s", "payload": {"at": second}, "tags": [],
                                "timestamp": base, "created_at": oid.generation_time})

    def seconds(**params):
        items = client.get(f"/data?{urlencode(params)}").get_json()["items"]
        return [item["payload"]["at"] for item in items]

    assert seconds(since="2024-01-01T00:00:01Z", until="2024-01-01T00:00:03Z") == [3, 2, 1]
    assert seconds(since="2024-01-01T00:00:01.5Z") == [4, 3, 2]
    assert seconds(until="2024-01-01T02:00:03.5+02:00") == [3, 2, 1, 0]
    assert seconds(since="2024-01-01T00:00:04Z", source="s") == [4]


@pytest.mark.parametrize("query, parameter", [
    ("limit=0", "limit"),
    ("limit=1001", "limit"),
    ("limit=ten", "limit"),
    ("source=", "source"),
    ("source=a%20b", "source"),
    ("since=yesterday", "since"),
    ("until=2024-01-01T00:00:00", "until"),
    ("since=2024-01-02T00:00:00Z&until=2024-01-01T00:00:00Z", "until"),
    ("cursor=abc", "cursor"),
    ("page=2", "page"),
])
def test_invalid_query_is_422_naming_the_parameter(client, query, parameter):
    response = client.get(f"/data?{query}")
    assert response.status_code == 422
    assert parameter in response.get_json()["errors"]["query"]


def test_limit_bounds_are_inclusive(client):
    store(client, 2)
    assert len(client.get("/data?limit=1").get_json()["items"]) == 1
    assert client.get("/data?limit=1000").status_code == 200


# source=None: the scope encodes an absent filter apart from any string, "None" included.
@pytest.mark.parametrize("other", ["source=s", "source=None", "since=2000-01-01T00:00:00Z"])
def test_cursor_of_another_query_is_422(client, other):
    client.post("/data", json={"source": "None", "payload": {}})
    store(client, 3)
    cursor = client.get("/data?limit=1").get_json()["next_cursor"]
    response = client.get(f"/data?limit=1&{other}&cursor={cursor}")
    assert response.status_code == 422
    assert "cursor" in response.get_json()["errors"]["query"]


def test_cursor_survives_a_change_of_limit(client):
    ids = store(client, 5)
    cursor = client.get("/data?limit=2").get_json()["next_cursor"]
    items = client.get(f"/data?limit=3&cursor={cursor}").get_json()["items"]
    assert [item["id"] for item in items] == ids[::-1][2:5]


def test_cursor_of_another_deployment_is_422(make_app):
    first, second = make_app(CURSOR_SECRET="1" * 32), make_app(CURSOR_SECRET="2" * 32)
    store(first.test_client(), 3)
    cursor = first.test_client().get("/data?limit=1").get_json()["next_cursor"]
    assert second.test_client().get(f"/data?cursor={cursor}").status_code == 422


def test_without_a_secret_the_memory_store_signs_with_a_random_key(make_app):
    first, second = make_app(), make_app()
    store(first.test_client(), 3)
    cursor = first.test_client().get("/data?limit=1").get_json()["next_cursor"]
    assert first.test_client().get(f"/data?cursor={cursor}").status_code == 200
    assert second.test_client().get(f"/data?cursor={cursor}").status_code == 422
