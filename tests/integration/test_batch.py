"""POST /data/batch: many records, all or nothing."""
from __future__ import annotations

import pytest

from . import expect

pytestmark = pytest.mark.blackbox


def records(source: str, count: int) -> list[dict]:
    return [{"source": source, "payload": {"i": i}, "tags": [f"t{i}"]} for i in range(count)]


def test_batch_is_201_with_ids_in_the_order_sent(api, source):
    sent = records(source, 5)
    response = api.post("/data/batch", json={"records": sent})
    assert response.status_code == 201, response.text
    assert expect.is_json(response)
    ids = response.json()["ids"]
    assert len(ids) == 5 and all(expect.OBJECT_ID.fullmatch(i) for i in ids)
    for record_id, record in zip(ids, sent):
        stored = expect.record(api.get(f"/data/{record_id}"), 200)
        assert {k: stored[k] for k in record} == record
    # Newest first: the last record sent is the newest.
    assert [r["id"] for r in api.walk(source=source)] == ids[::-1]


def test_batch_may_mix_sources(api, source):
    sent = records(source, 2) + records(source + "-b", 2)
    ids = api.post("/data/batch", json={"records": sent}).json()["ids"]
    assert [api.get(f"/data/{i}").json()["source"] for i in ids] == [r["source"] for r in sent]


@pytest.mark.parametrize(("index", "bad", "path"), [
    (3, {"source": "has space"}, "json.records.3.source"),
    (0, {"payload": [1]}, "json.records.0.payload"),
    (4, {"payload": {"$inc": 1}}, "json.records.4.payload.$inc"),
    (2, {"payload": {"n": 2**63}}, "json.records.2.payload.n"),
    (1, {"timestamp": "2024-01-01T00:00:00"}, "json.records.1.timestamp"),
    (3, {"unknown": True}, "json.records.3.unknown"),
])
def test_one_invalid_record_rejects_the_batch_and_stores_nothing(api, source, index, bad, path):
    sent = records(source, 5)
    sent[index] = {**sent[index], **bad}
    expect.error(api.post("/data/batch", json={"records": sent}), 422, path)
    assert api.walk(source=source) == []


def test_every_invalid_record_is_listed(api, source):
    sent = records(source, 6)
    sent[1]["source"] = ""
    sent[5]["tags"] = [""]
    body = expect.error(api.post("/data/batch", json={"records": sent}), 422,
                        "json.records.1.source", "json.records.5.tags")
    named = expect.error_paths(body["errors"])
    assert not any(p.startswith(("json.records.0", "json.records.2")) for p in named), named


@pytest.mark.parametrize("body", [
    {"records": []},
    {"records": [{"source": "s", "payload": {}}] * 1001},
    {},
    {"records": {"source": "s", "payload": {}}},
    {"records": [], "extra": 1},
], ids=["empty", "over-1000", "missing", "not-a-list", "unknown-field"])
def test_malformed_batch_is_422(api, body):
    expect.error(api.post("/data/batch", json=body), 422, "json")


def test_batch_of_1000_is_accepted(api, source):
    response = api.post("/data/batch", json={"records": records(source, 1000)})
    assert response.status_code == 201, response.text
    assert len(set(response.json()["ids"])) == 1000
    assert len(api.walk(limit=1000, source=source)) == 1000


def test_batch_not_declared_as_json_is_415(api, source):
    response = api.post("/data/batch", data='{"records": []}', headers={"Content-Type": "text/plain"})
    expect.error(response, 415)
