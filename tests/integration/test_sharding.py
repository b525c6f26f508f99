"""Sharding gates: the API on a real sharded MongoDB cluster, through mongos.

The sharded workflow starts deploy/sharded-cluster (a config server replica set, two
shard replica sets, mongos), runs the image's `shard-collection` and `init-db`
through mongos and serves the API from the image (BASE_URL). These tests then check
what the design (docs/architecture.md, "Shard key") relies on:

- the collections are sharded on the documented keys;
- a page with `source` reaches only the shards holding that source (one shard, a
  SINGLE_SHARD plan, for a small source); a by-id read and a page without `source`
  are broadcast, and their merged results are complete and in order;
- every shard a query reaches walks an index and examines at most limit + 1 keys;
- Idempotency-Keys hold when the key and its record live on different shards;
- how 100k records of 20 sources are spread over chunks and shards (reported).

Layout: the module places its own sources before loading them, so the shards each
query must reach are known: the key space is split at source boundaries and the
empty ranges are moved (no documents move, so no orphans inflate the counts).
Sources 01-09 live on one shard, 10-19 on the other, and source 00 is split by its
hashed `_id` with one half on each shard. In production the balancer does this as
chunks grow past their size; 100k small records stay far below one chunk.
"""
from __future__ import annotations

import os
from datetime import timedelta

import pytest
from bson import Int64, ObjectId
from bson.min_key import MinKey
from pymongo import MongoClient

from service.cli import KEYS_SHARD_KEY, RECORDS_SHARD_KEY
from service.repository import PageQuery, RecordRepository

from . import expect, harness, sharding
from .explain import RecordingCollection, assert_bounded, explain, per_shard

pytestmark = pytest.mark.sharded_only("shard targeting and per-shard plans exist only behind mongos")

SOURCES = 20
PER_SOURCE = 5_000


def key(source: str, hashed=None) -> dict:
    """A shard key value: the source, then a hashed _id (MinKey: the source's start)."""
    return {"source": source, "_id": MinKey() if hashed is None else hashed}


@pytest.fixture(scope="module")
def cluster(mongodb_uri, database_name):
    """mongos, the service's database there, and the shard names; needs a deployed API."""
    if not os.environ.get("BASE_URL"):
        pytest.fail("the sharding gates test a deployment: set BASE_URL to its API "
                    "(see .github/workflows/sharded.yml)")
    client = MongoClient(mongodb_uri, serverSelectionTimeoutMS=10_000, tz_aware=True)
    # The test places chunks itself; the balancer must not move them meanwhile.
    client.admin.command("balancerStop")
    shards = sorted(shard["_id"] for shard in client.admin.command("listShards")["shards"])
    assert len(shards) >= 2, f"a sharded cluster has at least two shards, this one: {shards}"
    yield client, client[database_name], shards
    client.close()


def sharding_of(client, namespace: str) -> dict:
    """The config.collections entry of a sharded collection."""
    entry = client.config.collections.find_one({"_id": namespace})
    assert entry is not None, f"{namespace} is not sharded: run `flask --app service shard-collection`"
    return entry


@pytest.fixture(scope="module")
def layout(cluster):
    """Twenty fresh sources placed on known shards: {name: shards holding it}."""
    client, database, shards = cluster
    namespace = f"{database.name}.records"
    uuid = sharding_of(client, namespace)["uuid"]
    prefix = harness.unique("shard")
    sources = [f"{prefix}-{i:02d}" for i in range(SOURCES)]
    end = f"{prefix}-~"  # sorts after every "-NN"
    points = [key(sources[0]), key(sources[0], Int64(0)), key(sources[1]), key(sources[10]), key(end)]
    for point in points:
        client.admin.command("split", namespace, middle=point)
    here = client.config.chunks.find_one({"uuid": uuid, "min": points[0]})["shard"]
    there = next(shard for shard in shards if shard != here)
    for lower, upper in ((points[1], points[2]), (points[3], points[4])):
        client.admin.command("moveChunk", namespace, bounds=[lower, upper], to=there,
                             _waitForDelete=True)
    placed = {source: {here} for source in sources[1:10]}
    placed.update({source: {there} for source in sources[10:]})
    placed[sources[0]] = {here, there}
    return placed


@pytest.fixture(scope="module")
def loaded(layout):
    """100k records, 5,000 per source, stored through the API's batch endpoint: {source: ids}."""
    return sharding.load(harness.Client(os.environ["BASE_URL"].rstrip("/")), sorted(layout), PER_SOURCE)


@pytest.fixture(scope="module")
def repository(cluster):
    """The service's repository over mongos, recording each query for explain()."""
    _, database, _ = cluster
    records = RecordingCollection(database["records"])
    return RecordRepository(records, database["records.idempotency"], 86400), records


def reached(explained: dict) -> tuple[str, set[str]]:
    """mongos's merge stage and the shards the query was sent to."""
    plan = explained["queryPlanner"]["winningPlan"]
    return plan["stage"], {shard["shardName"] for shard in plan["shards"]}


def test_collections_are_sharded_on_the_documented_keys(cluster):
    client, database, _ = cluster
    for name, shard_key in (("records", RECORDS_SHARD_KEY), ("records.idempotency", KEYS_SHARD_KEY)):
        entry = sharding_of(client, f"{database.name}.{name}")
        assert list(entry["key"].items()) == list(shard_key.items()), entry["key"]


@pytest.mark.parametrize("limit", [1, 100, 1000])
@pytest.mark.parametrize("which", ["small source", "other shard's source", "source on two shards"])
def test_page_with_source_reaches_only_its_shards(layout, loaded, repository, which, limit):
    sources = sorted(layout)
    source = {"small source": sources[5], "other shard's source": sources[15],
              "source on two shards": sources[0]}[which]
    repo, records = repository
    page = list(repo.page(PageQuery(limit=limit, source=source)))
    assert len(page) == min(limit + 1, PER_SOURCE) and {r["source"] for r in page} == {source}
    explained = explain(records)
    stage, shards = reached(explained)
    assert shards == layout[source]
    assert stage == ("SINGLE_SHARD" if len(shards) == 1 else "SHARD_MERGE_SORT")
    assert_bounded(explained, max_rows=limit + 1)


@pytest.mark.parametrize("limit", [1, 100, 1000])
@pytest.mark.parametrize("depth", ["first page", "deep page", "since and until"])
def test_page_without_source_is_broadcast_and_bounded_per_shard(cluster, loaded, repository, depth, limit):
    _, _, shards = cluster
    repo, records = repository
    ids = sorted(ObjectId(i) for source_ids in loaded.values() for i in source_ids)
    query = {"first page": {},
             "deep page": {"after": ids[len(ids) // 2]},
             "since and until": {"since": ids[100].generation_time,
                                 "until": ids[-100].generation_time - timedelta(seconds=1)}}[depth]
    page = list(repo.page(PageQuery(limit=limit, **query)))
    assert 0 < len(page) <= limit + 1
    assert [r["_id"] for r in page] == sorted((r["_id"] for r in page), reverse=True)
    explained = explain(records)
    assert reached(explained) == ("SHARD_MERGE_SORT", set(shards))
    assert_bounded(explained, max_rows=limit + 1)


def test_read_by_id_is_broadcast_and_reads_one_key_per_shard(cluster, layout, loaded, repository, api):
    _, _, shards = cluster
    repo, records = repository
    for source in sorted(layout):
        record_id = loaded[source][PER_SOURCE // 2]
        stored = repo.get(record_id)
        assert stored is not None and stored["source"] == source
        explained = explain(records)
        assert reached(explained) == ("SHARD_MERGE", set(shards))
        assert_bounded(explained, max_rows=1)
        body = expect.record(api.get(f"/data/{record_id}"), 200)
        assert (body["id"], body["source"]) == (record_id, source)


def test_walk_of_a_source_on_two_shards_is_complete_and_in_order(layout, loaded, api):
    source = sorted(layout)[0]
    walked = [record["id"] for record in api.walk(limit=1000, source=source)]
    assert walked == sharding.newest_first(loaded[source])


def test_walk_without_source_merges_every_shard_completely_and_in_order(loaded, api):
    sharding.assert_walk_without_source_is_complete(api, loaded)


def test_idempotency_keys_hold_across_shards(cluster, layout, api):
    _, database, shards = cluster
    sources = sorted(layout)
    # Records on each shard and on both; the keys spread over the shards by hashed _id.
    sharding.assert_keys_hold(api, [sources[3], sources[13], sources[0]])
    per_shard_keys = {row["shard"]: row["count"] for row in
                      database["records.idempotency"].aggregate([{"$collStats": {"count": {}}}])}
    assert set(shards) <= {shard for shard, count in per_shard_keys.items() if count}, per_shard_keys


def test_chunk_distribution_of_100k_records_in_20_sources(cluster, layout, loaded):
    client, database, shards = cluster
    uuid = sharding_of(client, f"{database.name}.records")["uuid"]
    chunks = {row["_id"]: row["n"] for row in client.config.chunks.aggregate(
        [{"$match": {"uuid": uuid}}, {"$group": {"_id": "$shard", "n": {"$sum": 1}}}])}
    documents = {row["shard"]: row["count"] for row in
                 database["records"].aggregate([{"$collStats": {"count": {}}}])}
    split_source = sorted(layout)[0]
    halves = {shard: stats["nReturned"] for shard, stats in per_shard(
        database["records"].find({"source": split_source}, {"_id": 1}).explain()).items()}
    for shard in shards:
        alone = sorted(source for source, held in layout.items() if held == {shard})
        harness.report("chunk distribution", shard=shard, chunks=chunks.get(shard, 0),
                       documents=documents.get(shard, 0), gate_sources_alone=len(alone),
                       split_source_records=halves.get(shard, 0))
        # Every record of the sources it holds alone, whatever else it holds.
        assert documents.get(shard, 0) >= PER_SOURCE * len(alone), documents
    assert sum(len(ids) for ids in loaded.values()) == SOURCES * PER_SOURCE
    # The hashed _id splits one source's records between the shards.
    assert sum(halves.values()) == PER_SOURCE and all(halves.get(shard) for shard in layout[split_source])
