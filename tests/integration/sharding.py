"""What the sharding gates assert on any sharded engine, through the API.

test_sharding (MongoDB through mongos) and test_sharding_documentdb (DocumentDB on
Citus) each read their own engine's plans and placement; these checks are theirs alike.
"""
from __future__ import annotations

from bson import ObjectId

from . import expect

BATCH = 1_000


def load(api, sources: list[str], per_source: int) -> dict[str, list[str]]:
    """`per_source` records in each source, stored through the batch endpoint: {source: ids}."""
    total = len(sources) * per_source
    records = [{"source": sources[i % len(sources)], "payload": {"i": i}} for i in range(total)]
    ids: dict[str, list[str]] = {source: [] for source in sources}
    for start in range(0, len(records), BATCH):
        batch = records[start:start + BATCH]
        response = api.post("/data/batch", json={"records": batch}, timeout=60)
        assert response.status_code == 201, response.text
        for record, record_id in zip(batch, response.json()["ids"]):
            ids[record["source"]].append(record_id)
    return ids


def newest_first(ids) -> list[str]:
    return sorted(ids, key=ObjectId, reverse=True)


def assert_walk_without_source_is_complete(api, loaded: dict[str, list[str]]) -> None:
    """Walking the load's time window without `source` returns every loaded record once, newest first."""
    everything = [i for ids in loaded.values() for i in ids]
    first, last = ObjectId(min(everything, key=ObjectId)), ObjectId(max(everything, key=ObjectId))
    window = {"since": first.generation_time.isoformat(), "until": last.generation_time.isoformat()}
    walked = [record["id"] for record in api.walk(limit=1000, **window)]
    assert len(walked) == len(set(walked)), "a record was returned twice"
    assert walked == newest_first(walked)
    mine = set(everything)
    # Only the gates write to their sources; other records in the window are kept out.
    assert [i for i in walked if i in mine] == newest_first(everything)


def post_keyed(api, body: dict, idempotency_key: str):
    return api.post("/data", json=body, headers={"Idempotency-Key": idempotency_key})


def assert_keys_hold(api, sources: list[str], count: int = 60) -> None:
    """Keyed writes over `sources`: a retry returns the first record, another body is 409,
    and exactly one record per key is stored."""
    sent = {}
    for i in range(count):
        body = {"source": sources[i % len(sources)], "payload": {"key": i}}
        sent[f"sharded-{i}"] = (body, expect.record(post_keyed(api, body, f"sharded-{i}"), 201))
    for idempotency_key, (body, created) in sent.items():
        assert expect.record(post_keyed(api, body, idempotency_key), 200) == created
        expect.error(post_keyed(api, {**body, "payload": {"key": "changed"}}, idempotency_key), 409)
    for source in sources:
        stored = {record["id"] for record in api.walk(limit=1000, source=source)
                  if isinstance(record["payload"].get("key"), int)}
        assert stored == {created["id"] for body, created in sent.values() if body["source"] == source}
