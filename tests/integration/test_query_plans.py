"""Query-plan gates: every query the API issues is bounded by its page size, at any depth.

For each query shape (by id; first page; deep page; with and without `source`; with
`since`/`until`), the repository's own query is captured and explained: the winning
plan walks an index (no collection scan, no in-memory SORT stage) and examines at most
limit + 1 index keys and documents however deep the page. That is why latency does not
grow with the collection. MongoDB only: FerretDB has no comparable explain. The same
bounds per shard, through mongos, are in test_sharding.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from bson import ObjectId
from pymongo import MongoClient

from service.repository import PageQuery, RecordRepository, to_document

from .explain import RecordingCollection, assert_bounded, explain

pytestmark = pytest.mark.mongodb_only("explain() plans; FerretDB has no comparable explain")

SOURCES = ("plan-a", "plan-b", "plan-c")
PER_SOURCE = 1500
START = datetime(2024, 1, 1, tzinfo=timezone.utc)


def at(i: int) -> datetime:
    """Record i's creation time: one second apart, so ids are distinct and since/until select slices."""
    return START + timedelta(seconds=i)


@pytest.fixture(scope="module")
def plans(mongodb_uri, database_name):
    """A repository over a collection of 4,500 records in 3 sources, indexes made by the real command path."""
    client = MongoClient(mongodb_uri, serverSelectionTimeoutMS=5000, tz_aware=True)
    database = client[f"{database_name}_plans"]
    records = RecordingCollection(database["records"])
    repository = RecordRepository(records, database["records.idempotency"], 86400)
    repository.ensure_indexes()
    total = PER_SOURCE * len(SOURCES)
    documents = [to_document({"source": SOURCES[i % len(SOURCES)], "payload": {"i": i}, "tags": [],
                              "timestamp": None}, ObjectId.from_datetime(at(i))) for i in range(total)]
    database["records"].insert_many(documents, ordered=False)
    yield repository, records
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
    repository, records = plans
    moment = at(1234) if known else START - timedelta(days=1)
    record_id = ObjectId.from_datetime(moment)
    assert (repository.get(str(record_id)) is not None) is known
    assert_bounded(explain(records), limit=1)


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
    repository, records = plans
    spec = dict(PAGE_SHAPES[shape])
    depth = spec.pop("depth", None)
    after = newest_id(spec.get("source"), depth) if depth is not None else None
    page = repository.page(PageQuery(limit=limit, after=after, **spec))
    assert 0 < len(page) <= limit + 1
    assert_bounded(explain(records), limit=limit + 1)
