"""Query-plan gates: every query the API issues is bounded by its page size, at any depth.

For each query shape (by id; first page; deep page; with and without `source`; with
`since`/`until`), the repository's own query is captured and explained: the winning
plan walks an index (no collection scan, no in-memory SORT stage) and examines at most
limit + 1 index keys and documents however deep the page. That is why latency does not
grow with the collection. On MongoDB from explain()'s executionStats; on FerretDB 2 from
PostgreSQL's EXPLAIN (ANALYZE) of the same find command: a Limit over an Index Scan on the
hinted index, no Sort node, rows read <= limit + 1. On the sharded DocumentDB engine
(`make test-sharded`) the collection is sharded first and the same holds on each shard
the query reached (each task of Citus's plan), and a query with `source` reaches one
shard. The same bounds per shard, through mongos, are in test_sharding.
"""
from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest
from bson import ObjectId
from pymongo import MongoClient

from service.repository import ID_INDEX, SOURCE_INDEX, PageQuery, RecordRepository, to_document

from . import harness
from .explain import (FindRecorder, RecordingCollection, assert_bounded, assert_postgres_bounded, explain,
                      postgres_plan, shard_plans)

SOURCES = ("plan-a", "plan-b", "plan-c")
PER_SOURCE = 1500
START = datetime(2024, 1, 1, tzinfo=timezone.utc)


def at(i: int) -> datetime:
    """Record i's creation time: one second apart, so ids are distinct and since/until select slices."""
    return START + timedelta(seconds=i)


class Gate:
    """Checks the plan of the last query the repository ran, on whichever server this is."""

    def __init__(self, client: MongoClient, records: RecordingCollection, recorder: FindRecorder):
        self.records, self.recorder = records, recorder
        self.ferretdb = "ferretdb" in client.server_info()
        self.pg_host = os.environ.get("FERRETDB_PG_HOST")
        if self.ferretdb and not self.pg_host:
            pytest.skip("FerretDB's explain has no execution statistics and these gates read PostgreSQL's "
                        "EXPLAIN (ANALYZE) through its socket: run them with scripts/integration.sh, "
                        "which sets FERRETDB_PG_HOST")

    def check(self, index: str, max_rows: int, limited: bool = True) -> None:
        """An index walk of `index`, no sort, at most `max_rows` entries read (under a Limit node),
        on each shard reached; one shard for a query with `source` on the sharded engine."""
        if self.ferretdb:
            shards = shard_plans(postgres_plan(self.pg_host, self.recorder.command))
            if harness.sharded_engine() and index == SOURCE_INDEX:
                assert len(shards) == 1, len(shards)
            for plan in shards:
                assert_postgres_bounded(plan, index, max_rows, limited)
        else:
            assert_bounded(explain(self.records), max_rows=max_rows)


@pytest.fixture(scope="module")
def plans(mongodb_uri, database_name):
    """A repository over a collection of 4,500 records in 3 sources, indexes made by the real command path."""
    recorder = FindRecorder()
    client = MongoClient(mongodb_uri, serverSelectionTimeoutMS=5000, tz_aware=True,
                         event_listeners=[recorder])
    database = client[f"{database_name}_plans"]
    if harness.sharded_engine():
        harness.shard(database.name)
    records = RecordingCollection(database["records"])
    repository = RecordRepository(records, database["records.idempotency"], 86400)
    repository.ensure_indexes()
    total = PER_SOURCE * len(SOURCES)
    documents = [to_document({"source": SOURCES[i % len(SOURCES)], "payload": {"i": i}, "tags": [],
                              "timestamp": None}, ObjectId.from_datetime(at(i))) for i in range(total)]
    database["records"].insert_many(documents, ordered=False)
    yield repository, Gate(client, records, recorder)
    client.drop_database(database.name)
    client.close()


def newest_id(source: str | None, depth: int) -> ObjectId:
    """The id `depth` records below the newest one (of `source`, if given): a cursor position."""
    if source is None:
        return ObjectId.from_datetime(at(PER_SOURCE * len(SOURCES) - 1 - depth))
    position = SOURCES.index(source) + len(SOURCES) * (PER_SOURCE - 1 - depth)
    return ObjectId.from_datetime(at(position))


@pytest.mark.parametrize("known", [True, False], ids=["present", "absent"])
def test_by_id_reads_one_index_entry(plans, known):
    repository, gate = plans
    moment = at(1234) if known else START - timedelta(days=1)
    record_id = ObjectId.from_datetime(moment)
    assert (repository.get(str(record_id)) is not None) is known
    # An equality on the unique _id index: PostgreSQL needs no Limit node to stop after one row.
    gate.check(ID_INDEX, max_rows=1, limited=False)


PAGE_SHAPES = {
    "first page": dict(),
    "first page, source": dict(source="plan-b"),
    "deep page": dict(depth=3000),
    "deep page, source": dict(source="plan-b", depth=1200),
    "last page": dict(depth=PER_SOURCE * len(SOURCES) - 50),
    "last page, source": dict(source="plan-c", depth=PER_SOURCE - 30),
    "since": dict(since=at(2000)),
    "until": dict(until=at(2500)),
    "since and until": dict(since=at(1000), until=at(3000)),
    "since and until, source": dict(source="plan-a", since=at(1000), until=at(3000)),
    "since and until, deep page": dict(since=at(100), until=at(4000), depth=2000),
    "since and until, source, deep page": dict(source="plan-a", since=at(100), until=at(4000), depth=600),
}


@pytest.mark.parametrize("limit", [1, 100, 1000])
@pytest.mark.parametrize("shape", list(PAGE_SHAPES), ids=list(PAGE_SHAPES))
def test_page_reads_at_most_limit_plus_one(plans, shape, limit):
    repository, gate = plans
    spec = dict(PAGE_SHAPES[shape])
    depth = spec.pop("depth", None)
    after = newest_id(spec.get("source"), depth) if depth is not None else None
    page = list(repository.page(PageQuery(limit=limit, after=after, **spec)))
    assert 0 < len(page) <= limit + 1
    gate.check(SOURCE_INDEX if "source" in spec else ID_INDEX, max_rows=limit + 1)


FEED_SHAPES = {
    "from the start": dict(),
    "from the start, source": dict(source="plan-b"),
    "deep checkpoint": dict(depth=3000),
    "deep checkpoint, source": dict(source="plan-b", depth=1200),
    "near the end": dict(depth=PER_SOURCE * len(SOURCES) - 50),
    "near the end, source": dict(source="plan-c", depth=PER_SOURCE - 30),
    "horizon inside the data": dict(depth=1000, horizon=2000),
    "horizon inside the data, source": dict(source="plan-a", depth=300, horizon=2000),
}


def oldest_id(source: str | None, depth: int) -> ObjectId:
    """The id `depth` records above the oldest one (of `source`, if given): a checkpoint position."""
    position = depth if source is None else SOURCES.index(source) + len(SOURCES) * depth
    return ObjectId.from_datetime(at(position))


@pytest.mark.parametrize("limit", [1, 100, 1000])
@pytest.mark.parametrize("shape", list(FEED_SHAPES), ids=list(FEED_SHAPES))
def test_feed_page_reads_at_most_limit_plus_one(plans, shape, limit):
    """The feed walks the same indexes upwards: `_id_`, or `source_1__id_-1` backwards."""
    repository, gate = plans
    spec = dict(FEED_SHAPES[shape])
    start = oldest_id(spec.get("source"), spec.pop("depth", 0))
    horizon = ObjectId.from_datetime(at(spec.pop("horizon"))) if "horizon" in spec else ObjectId()
    page = list(repository.feed(start, horizon, limit, spec.get("source")))
    assert 0 < len(page) <= limit and page == sorted(page, key=lambda d: d["_id"])
    gate.check(SOURCE_INDEX if "source" in spec else ID_INDEX, max_rows=limit + 1)
