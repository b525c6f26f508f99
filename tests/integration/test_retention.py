"""RETENTION_DAYS on a real server: init-db manages the TTL index, the server's TTL job
deletes old records (once a minute on MongoDB and on FerretDB), and the feed and pages
stay correct while it does."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from bson import ObjectId
from pymongo import MongoClient

from service.repository import RETENTION_INDEX, SOURCE_INDEX, to_document

from . import harness

pytestmark = pytest.mark.fault
SETTINGS = dict(MONGODB_REQUEST_TIMEOUT_MS="1000", FEED_SETTLE_SECONDS="2")


def documents(count: int, start: datetime, source: str) -> list[dict]:
    return [to_document({"source": source, "payload": {"i": i}, "tags": [], "timestamp": None},
                        ObjectId.from_datetime(start + timedelta(seconds=i))) for i in range(count)]


def feed_ids(api: harness.Client, token: str | None = None) -> tuple[list[str], str]:
    """Follow the feed from `token` until an empty page; the ids and the last checkpoint."""
    ids = []
    while True:
        response = api.get("/data/feed", params={"limit": 100, **({"after": token} if token else {})})
        assert response.status_code == 200, response.text
        page = response.json()
        ids += [item["id"] for item in page["items"]]
        token = page["next"]
        if not page["items"]:
            return ids, token


@pytest.fixture
def expiring(mongodb_uri, tmp_path):
    """A database of its own, and a function running init-db on it with a RETENTION_DAYS."""
    name = harness.unique("retention")
    client = MongoClient(mongodb_uri, tz_aware=True)

    def init_db(days: str) -> dict:
        workdir = tmp_path / f"init-{days or 'none'}-{time.monotonic_ns()}"
        workdir.mkdir()
        # A key TTL within the shortest retention here (1 day): start-up refuses a longer one.
        harness.ServiceProcess(workdir, MONGODB_URI=mongodb_uri, MONGODB_DATABASE=name,
                               RETENTION_DAYS=days, IDEMPOTENCY_TTL_SECONDS="3600").init_db()
        return client[name]["records"].index_information()

    yield name, client[name]["records"], init_db
    client.drop_database(name)
    client.close()


def test_init_db_creates_changes_and_removes_only_the_ttl_index(expiring):
    _, _, init_db = expiring
    assert RETENTION_INDEX not in init_db("")
    assert init_db("30")[RETENTION_INDEX]["expireAfterSeconds"] == 30 * 86400
    assert init_db("7")[RETENTION_INDEX]["expireAfterSeconds"] == 7 * 86400
    indexes = init_db("")
    assert RETENTION_INDEX not in indexes and {"_id_", SOURCE_INDEX} <= set(indexes)


def test_old_records_expire_while_the_feed_and_pages_stay_exact(expiring, mongodb_uri, start_service):
    name, records, init_db = expiring
    now = datetime.now(timezone.utc)
    old = documents(300, now - timedelta(days=3), "old")
    recent = documents(50, now - timedelta(hours=1), "recent")
    init_db("")
    records.insert_many(old + recent)
    api = harness.Client(start_service(MONGODB_URI=mongodb_uri, MONGODB_DATABASE=name, **SETTINGS).url)
    first = api.get("/data/feed", params={"limit": 100}).json()
    inside = first["next"]  # a checkpoint in the middle of what will expire
    assert [item["id"] for item in first["items"]] == [str(d["_id"]) for d in old[:100]]
    assert init_db("1")[RETENTION_INDEX]["expireAfterSeconds"] == 86400

    expected_tail = [str(d["_id"]) for d in old[100:] + recent]
    started = time.monotonic()
    while records.count_documents({"source": "old"}) and time.monotonic() - started < 180:
        # While the TTL job deletes: ascending, no duplicates, nothing but what was stored.
        ids, _ = feed_ids(api, inside)
        assert ids == sorted(set(ids)) and set(ids) <= set(expected_tail)
        assert ids[-50:] == expected_tail[-50:]
        page = api.get("/data", params={"limit": 1000}).json()["items"]
        assert [item["id"] for item in page][:50] == expected_tail[::-1][:50]
        time.sleep(2)
    waited = round(time.monotonic() - started)
    assert records.count_documents({"source": "old"}) == 0, "the TTL job did not delete within 3 minutes"
    recent_ids = [str(d["_id"]) for d in recent]
    assert feed_ids(api, inside)[0] == recent_ids
    assert feed_ids(api)[0] == recent_ids
    assert api.walk(limit=7) and [item["id"] for item in api.walk(limit=7)] == recent_ids[::-1]
    harness.report("retention", expired=len(old), kept=len(recent), expired_within_s=waited)
