"""Sharding gates on the sharded DocumentDB engine: the API on Citus, through FerretDB.

`make test-sharded` starts a Citus coordinator and two workers with DocumentDB's
distributed extension, FerretDB on the coordinator, and shards the run's database
(`scripts/ferretdb.sh shard`: records on `{source: "hashed"}`, keys on `{_id: "hashed"}`,
8 shards, 4 per worker). What test_sharding checks through mongos, these check here:

- the collections are sharded on the documented keys;
- a source page and a source feed reach one shard, read over the wire from FerretDB's
  explain(), which carries Citus's plan and its task count; a page and a feed without
  `source` and a read by id reach every shard (the per-shard bounds of every page and
  feed shape are the plan gates of test_query_plans, which shard their collection here);
- 100k records of 20 sources: reads by id are right, walks with and without `source`
  are complete and in order;
- Idempotency-Keys hold while the keys are sharded on their own hashed `_id`, apart from
  their records (sharded by source), and spread over both workers;
- the feed delivers every record once to a consumer while writers run concurrently.
"""
from __future__ import annotations

import os
import subprocess

import pytest
from bson import ObjectId
from pymongo import MongoClient

from service.repository import PageQuery, RecordRepository

from . import expect, harness, sharding, test_feed
from .explain import RecordingCollection, citus_job

pytestmark = pytest.mark.sharded_documentdb("these gates read Citus's plans and shard placement")

SOURCES = 20
PER_SOURCE = 5_000
SHARDS = 8


def coordinator_sql(sql: str) -> list[str]:
    """Rows of a query on the Citus coordinator (the server the run started), one line each."""
    out = subprocess.run(["psql", "-h", os.environ["FERRETDB_PG_HOST"], "-U", "postgres",
                          "-d", "postgres", "-XAtq", "-c", sql],
                         capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.splitlines()


def collection_table(database: str, collection: str) -> str:
    """The distributed table that holds a collection's documents."""
    [collection_id] = coordinator_sql(
        "SELECT collection_id FROM documentdb_api_catalog.collections "
        f"WHERE database_name = '{database}' AND collection_name = '{collection}'")
    return f"documentdb_data.documents_{collection_id}"


def documents_per_worker(database: str, collection: str) -> dict[str, int]:
    """How many documents of a collection each worker holds."""
    table = collection_table(database, collection)
    rows = coordinator_sql(
        "SELECT s.nodeport, sum(r.result::bigint) FROM run_command_on_shards("
        f"'{table}', 'SELECT count(*) FROM %s') r JOIN citus_shards s USING (shardid) GROUP BY 1")
    return {port: int(count) for port, count in (row.split("|") for row in rows)}


def tasks(records: RecordingCollection) -> int:
    """How many shards the last query reached, from FerretDB's explain() over the wire."""
    job = citus_job(records.cursor.explain()["queryPlanner"]["Plan"])
    assert job is not None, "not a distributed plan: is the collection sharded?"
    return int(job["Task Count"])


@pytest.fixture(scope="module")
def database(mongodb_uri, database_name):
    """The run's database, sharded by `make test-sharded` before the service created its indexes."""
    client = MongoClient(mongodb_uri, serverSelectionTimeoutMS=10_000, tz_aware=True)
    yield client[database_name]
    client.close()


@pytest.fixture(scope="module")
def loaded(api_module):
    """100k records, 5,000 in each of 20 fresh sources, stored through the API: {source: ids}."""
    prefix = harness.unique("shard")
    return sharding.load(api_module, [f"{prefix}-{i:02d}" for i in range(SOURCES)], PER_SOURCE)


@pytest.fixture(scope="module")
def api_module(local_server):
    """An HTTP session bound to the API, for module-scoped fixtures."""
    return harness.Client(local_server.url)


@pytest.fixture(scope="module")
def repository(database):
    """The service's repository on the sharded collections, recording each query for explain()."""
    records = RecordingCollection(database["records"])
    return RecordRepository(records, database["records.idempotency"], 86400), records


def test_collections_are_sharded_on_the_documented_keys(database, local_server):
    rows = coordinator_sql(
        "SELECT collection_name, documentdb_core.bson_to_json_string(shard_key) "
        "FROM documentdb_api_catalog.collections "
        f"WHERE database_name = '{database.name}' AND collection_name LIKE 'records%' ORDER BY 1")
    assert rows == ['records|{ "source" : "hashed" }', 'records.idempotency|{ "_id" : "hashed" }']
    table = collection_table(database.name, "records")
    placements = coordinator_sql(f"SELECT nodeport, count(*) FROM citus_shards "
                                 f"WHERE table_name = '{table}'::regclass GROUP BY 1")
    assert sorted(int(row.split("|")[1]) for row in placements) == [SHARDS // 2, SHARDS // 2], placements


@pytest.mark.parametrize("limit", [1, 100, 1000])
def test_source_page_and_source_feed_reach_one_shard(loaded, repository, limit):
    repo, records = repository
    for source in sorted(loaded)[:3]:
        page = list(repo.page(PageQuery(limit=limit, source=source)))
        newest = sorted((ObjectId(i) for i in loaded[source]), reverse=True)
        assert [r["_id"] for r in page] == newest[:limit + 1]
        assert tasks(records) == 1
        feed = repo.feed(ObjectId("0" * 24), ObjectId(), limit, source)
        assert [r["_id"] for r in feed] == sorted(ObjectId(i) for i in loaded[source])[:limit]
        assert tasks(records) == 1


def test_page_feed_and_read_by_id_without_source_reach_every_shard(loaded, repository):
    repo, records = repository
    list(repo.page(PageQuery(limit=100)))
    assert tasks(records) == SHARDS
    list(repo.feed(ObjectId("0" * 24), ObjectId(), 100, None))
    assert tasks(records) == SHARDS
    source = sorted(loaded)[7]
    assert repo.get(loaded[source][42])["source"] == source
    assert tasks(records) == SHARDS


def test_reads_by_id_are_right_on_every_shard(loaded, api):
    for source, ids in sorted(loaded.items()):
        for record_id in (ids[0], ids[PER_SOURCE // 2], ids[-1]):
            body = expect.record(api.get(f"/data/{record_id}"), 200)
            assert (body["id"], body["source"]) == (record_id, source)


def test_walk_of_each_source_is_complete_and_in_order(loaded, api):
    for source in sorted(loaded)[:4]:
        walked = [record["id"] for record in api.walk(limit=1000, source=source)]
        assert walked == sharding.newest_first(loaded[source])


def test_walk_without_source_merges_every_shard_completely_and_in_order(loaded, api):
    sharding.assert_walk_without_source_is_complete(api, loaded)


def test_idempotency_keys_hold_with_keys_sharded_apart_from_their_records(database, api):
    sharding.assert_keys_hold(api, [harness.unique("keyed") for _ in range(6)])
    keys, records = (documents_per_worker(database.name, name) for name in ("records.idempotency", "records"))
    harness.report("keys and records per worker", keys=keys, records=records)
    # Keys spread over both workers by their hashed _id, whatever shard holds their record.
    assert len([port for port, count in keys.items() if count]) == 2, keys


def test_the_feed_delivers_every_record_once_on_sharded_collections(mongodb_uri, start_service):
    database = harness.unique("feed")
    harness.shard(database)
    try:
        figures = test_feed.run(mongodb_uri, database, start_service)
    finally:
        MongoClient(mongodb_uri).drop_database(database)
    harness.report("feed exactly once (sharded DocumentDB)", **figures)


def test_index_sizes_per_record_are_reported(database, loaded):
    stats = database.command("collStats", "records")
    per_record = {name: round(size / stats["count"], 1) for name, size in stats["indexSizes"].items()}
    harness.report("index bytes per record", records=stats["count"],
                   record_bytes=round(stats["size"] / stats["count"]), **per_record)
    # init-db's indexes exist on the sharded collection and are not empty.
    assert {"_id_", "_id_-1", "source_1__id_-1"} <= set(per_record), per_record
    assert stats["count"] >= SOURCES * PER_SOURCE and all(per_record.values()), per_record
