"""GET /data/feed under concurrent writers: every acknowledged record once, in order, nothing else.

Writers: 4 threads POST keyed records to a service of 2 gunicorn workers whose database
traffic goes through a proxy that holds each message to the database for a random time,
so ids are made long before some writes commit, in another order than they were made.
Any failure (503, a dropped connection) is retried with the same key until acknowledged.
A consumer follows the feed of another service (a second pod) on the same database the
whole time. Then the same while the database is killed and restarted mid-run, so that
retries complete reserved ids, and renew those that became too old.
"""
from __future__ import annotations

import random
import threading
import time
from datetime import timedelta

import pytest
import requests
from pymongo import MongoClient

from service.ids import made_at

from . import harness

pytestmark = pytest.mark.fault

RECORDS = 2000
WRITERS = 4
BUDGET_MS = "1000"
SETTLE_S = "2"  # the least the budget allows: 1 s + 1 s
# At most 0.4 s per message: most writes commit within the budget, some take long
# enough to reorder commits against ids, a few time out and are retried.
MAX_DELAY_S = 0.4


def network_delay() -> float:
    return min(random.expovariate(1 / 0.03), MAX_DELAY_S)


class Writer(threading.Thread):
    """POSTs its share of the records, each under its own key, retrying until acknowledged."""

    def __init__(self, url: str, number: int, count: int, acked: dict, stats: dict):
        super().__init__(daemon=True)
        self.url, self.number, self.count, self.acked, self.stats = url, number, count, acked, stats
        self.session = requests.Session()

    def run(self) -> None:
        for n in range(self.count):
            key = f"w{self.number}-{n}"
            body = {"source": f"writer-{self.number}", "payload": {"key": key}}
            self.acked[key] = self.store(key, body)

    def store(self, key: str, body: dict) -> str:
        for _ in range(600):
            try:
                response = self.session.post(f"{self.url}/data", json=body, headers={"Idempotency-Key": key},
                                             timeout=10)
            except requests.RequestException:
                response = None
            if response is not None and response.status_code in (200, 201):
                assert response.json()["payload"] == body["payload"]
                return response.json()["id"]
            assert response is None or response.status_code == 503, response.text
            self.stats["retries"] += 1
            time.sleep(0.2)
        raise AssertionError(f"{key} was never acknowledged")


class Consumer(threading.Thread):
    """Follows the feed from the start, page after page, polling when it is empty."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.delivered: list[dict] = []
        self.stop = threading.Event()
        self.drained = threading.Event()
        self.errors = 0

    def run(self) -> None:
        token, session = None, requests.Session()
        while not self.stop.is_set():
            try:
                response = session.get(f"{self.url}/data/feed", params={"limit": 100, **(
                    {"after": token} if token else {})}, timeout=10)
            except requests.RequestException:
                response = None
            if response is None or response.status_code != 200:
                assert response is None or response.status_code == 503, response.text
                self.errors += 1
                time.sleep(0.2)
                continue
            page = response.json()
            self.delivered += page["items"]
            token = page["next"]
            if not page["items"]:
                self.drained.set()
                time.sleep(0.1)
            else:
                self.drained.clear()


class NaiveFollower(threading.Thread):
    """Reads ids above the last one it saw, with no horizon: what "everything after X" gets.

    Not an assertion: the records it never sees show that the run did commit records
    behind ids already visible, which is what the settle horizon is for.
    """

    def __init__(self, uri: str, database: str):
        super().__init__(daemon=True)
        self.client = MongoClient(uri, serverSelectionTimeoutMS=2000)
        self.records = self.client[database]["records"]
        self.seen: set[str] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        last = None
        while not self.stop.wait(0.05):
            try:
                found = list(self.records.find({"_id": {"$gt": last}} if last else {}, {"_id": 1})
                             .sort("_id", 1).limit(1000))
            except Exception:  # the database may be down: this follower only observes
                continue
            self.seen.update(str(d["_id"]) for d in found)
            last = found[-1]["_id"] if found else last


def renewed_keys(uri: str, database: str) -> int:
    """Keys whose ids were renewed by a retry: ids made a budget or more after the key was reserved."""
    ttl = timedelta(seconds=86400)  # IDEMPOTENCY_TTL_SECONDS: expires_at is the reservation time + it
    with MongoClient(uri, tz_aware=True) as client:
        keys = client[database]["records.idempotency"].find()
        budget = timedelta(milliseconds=int(BUDGET_MS))
        return sum(made_at(k["record_ids"][0]) - (k["expires_at"] - ttl) >= budget for k in keys)


def run(database_uri: str, database: str, start_service, outage=None) -> dict:
    """Write RECORDS records under a consumer; `outage(acked)` may break the database meanwhile."""
    settings = dict(MONGODB_DATABASE=database, MONGODB_REQUEST_TIMEOUT_MS=BUDGET_MS,
                    FEED_SETTLE_SECONDS=SETTLE_S, MONGODB_TIMEOUT_MS="1000")
    port = int(database_uri.rsplit(":", 1)[1].strip("/"))
    acked: dict[str, str] = {}
    stats = {"retries": 0}
    with harness.FaultProxy(port, delay=network_delay) as proxy:
        writers_service = start_service(init_db=True, MONGODB_URI=proxy.uri, **settings)
        consumer = Consumer(start_service(MONGODB_URI=database_uri, **settings).url)
        consumer.start()
        naive = NaiveFollower(database_uri, database)
        naive.start()
        writers = [Writer(writers_service.url, w, RECORDS // WRITERS, acked, stats) for w in range(WRITERS)]
        started = time.monotonic()
        for writer in writers:
            writer.start()
        if outage:
            outage(acked)
        for writer in writers:
            writer.join(600)
        written_s = time.monotonic() - started
        # Everything acknowledged is settled once the window has passed: the consumer must catch up.
        time.sleep(int(SETTLE_S) + 1)
        consumer.drained.clear()
        assert consumer.drained.wait(60), "the consumer did not catch up"
        consumer.stop.set()
        naive.stop.set()
        consumer.join(30)
        naive.join(30)
        naive.client.close()
    delivered = [item["id"] for item in consumer.delivered]
    expected = set(acked.values())
    assert len(acked) == RECORDS
    figures = dict(written=len(expected), delivered=len(delivered),
                   duplicates=len(delivered) - len(set(delivered)),
                   missing=len(expected - set(delivered)), unexpected=len(set(delivered) - expected),
                   retries=stats["retries"], consumer_errors=consumer.errors,
                   writes_s=round(written_s, 1), naive_follower_missed=len(expected - naive.seen),
                   renewed_ids=renewed_keys(database_uri, database))
    assert delivered == sorted(delivered), "the feed went back in id order"
    assert (figures["duplicates"], figures["missing"], figures["unexpected"]) == (0, 0, 0), figures
    by_key = {item["payload"]["key"]: item["id"] for item in consumer.delivered}
    assert by_key == acked  # each key's record is the one its acknowledgement named
    return figures


def test_the_feed_delivers_every_acknowledged_record_once_in_order(mongodb_uri, start_service):
    database = harness.unique("feed")
    try:
        figures = run(mongodb_uri, database, start_service)
    finally:
        MongoClient(mongodb_uri).drop_database(database)
    harness.report("feed exactly once (delayed commits)", **figures)


@pytest.mark.skipif(not harness.FerretDB.available(),
                    reason="kills and restarts its own FerretDB: run `scripts/ferretdb.sh install` first")
def test_the_feed_stays_exactly_once_when_the_database_crashes_and_writes_are_retried(start_service):
    database = harness.FerretDB().start()

    def crash(acked: dict) -> None:
        assert harness.wait_until(lambda: len(acked) >= RECORDS // 4, 300), "the writers did not start"
        database.kill()
        time.sleep(3)  # longer than twice the budget: retries of keys reserved before the crash renew ids
        database.start()

    try:
        figures = run(database.uri, "feed", start_service, outage=crash)
    finally:
        database.stop()
    harness.report("feed exactly once (database killed and restarted)", **figures)
