"""The write path under faults: batches stored exactly once, keys forgotten, missing indexes.

Each test starts its own service (and, where it kills the database, its own FerretDB),
so nothing here depends on the order of the suite.
"""
from __future__ import annotations

import subprocess
import threading
import time

import pytest
import requests
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from . import expect, harness

pytestmark = pytest.mark.fault

BATCH = 1000
# How long the killed database stays down: longer than the server selection timeout (2 s),
# so the request in flight fails rather than waits.
OUTAGE_S = 3
# A batch of 1,000 records of 1 KiB is about 1.1 MB of JSON, over the default 1 MiB.
BODY_LIMIT = str(4 * 2**20)
needs_ferretdb = pytest.mark.skipif(
    not harness.FerretDB.available(),
    reason="kills and restarts its own FerretDB: run `scripts/ferretdb.sh install` first",
)


def batch(source: str, round_: int) -> dict:
    """1,000 records of about 1 KiB each: long enough for a kill to land during the write."""
    return {"records": [{"source": source, "payload": {"round": round_, "n": n, "text": "x" * 1000},
                         "tags": [f"n{n}"]} for n in range(BATCH)]}


def post_batch(url: str, body: dict, key: str) -> requests.Response | None:
    """POST the batch; None when the connection itself failed."""
    try:
        return requests.post(f"{url}/data/batch", json=body, headers={"Idempotency-Key": key}, timeout=60)
    except requests.ConnectionError:
        return None


def restart(database: harness.FerretDB) -> None:
    """Start the killed database again, once the killed PostgreSQL has been reaped.

    Until its parent reaps it, the killed postmaster is a zombie whose pid PostgreSQL's
    lock file still names, and a start refuses to run beside it.
    """
    for attempt in range(10):
        try:
            database.start()
            return
        except subprocess.CalledProcessError:
            if attempt == 9:
                raise
            time.sleep(1)


def kill_when(database: harness.FerretDB, ready) -> float:
    """SIGKILL the database as soon as `ready()` is true; return when that was."""
    assert harness.wait_until(ready, 30, interval=0.001), "the write never started"
    database.kill()
    return time.monotonic()


class Direct:
    """Reads straight from the database, around the service."""

    def __init__(self, uri: str, database: str):
        self.client = MongoClient(uri, serverSelectionTimeoutMS=2000, tz_aware=True)
        self.db = self.client[database]

    def key(self, key: str) -> dict | None:
        return self.db["records.idempotency"].find_one({"_id": f"#batch/{key}"})

    def ids_of(self, source: str) -> list:
        return [d["_id"] for d in self.db["records"].find({"source": source}, {"_id": 1}).sort("_id", 1)]

    def up(self) -> bool:
        try:
            self.client.admin.command("ping")
            return True
        except PyMongoError:
            return False


# When the kill lands: as soon as the key is reserved (before or during the record
# write), as soon as the first record is visible (during it), or a moment later.
KILL_POINTS = {
    "key reserved": lambda direct, key, source: direct.key(key) is not None,
    "first record visible": lambda direct, key, source: direct.db["records"].find_one({"source": source}),
}


@needs_ferretdb
def test_a_keyed_batch_killed_mid_write_is_stored_exactly_once_on_retry(start_service):
    database = harness.FerretDB().start()
    name = harness.unique("wp")
    direct = Direct(database.uri, name)
    try:
        server = start_service(init_db=True, MONGODB_URI=database.uri, MONGODB_DATABASE=name,
                               MAX_CONTENT_LENGTH=BODY_LIMIT)
        outcomes = []
        for round_, (point, ready) in enumerate(KILL_POINTS.items()):
            outcomes.append(kill_and_retry(server, database, direct, round_, point, ready))
    finally:
        direct.client.close()
        database.stop()
    for outcome in outcomes:
        harness.report("keyed 1,000-record batch, database killed mid-write, then retried", **outcome)


def kill_and_retry(server, database, direct: Direct, round_: int, point: str, ready) -> dict:
    """One round: POST, kill at `point`, restart, retry with the same key until acknowledged."""
    source, key = harness.unique("batch"), f"kill-{round_}"
    body = batch(source, round_)
    first: dict = {}
    sender = threading.Thread(target=lambda: first.update(response=post_batch(server.url, body, key)))
    sender.start()
    kill_when(database, lambda: ready(direct, key, source))
    sender.join(60)
    time.sleep(OUTAGE_S)
    restart(database)
    assert harness.wait_until(direct.up, 30)
    stored_before_retry = len(direct.ids_of(source))
    retries, response = 0, None
    while response is None or response.status_code == 503:
        assert retries < 10, f"the retry was never acknowledged: {response and response.text[:300]}"
        retries += 1
        time.sleep(0.5)
        response = post_batch(server.url, body, key)
    assert response.status_code in (200, 201), response.text[:500]
    ids = response.json()["ids"]
    reserved = [str(i) for i in direct.key(key)["record_ids"]]
    stored = [str(i) for i in direct.ids_of(source)]
    # Exactly the reserved ids, each once, in the order sent; the payloads in the same order.
    assert ids == reserved and len(set(ids)) == BATCH
    assert sorted(stored) == sorted(reserved) and len(stored) == BATCH
    replay = post_batch(server.url, body, key)
    assert replay.status_code == 200 and replay.json()["ids"] == ids
    for at in (0, BATCH // 2, BATCH - 1):
        record = expect.record(requests.get(f"{server.url}/data/{ids[at]}", timeout=10), 200)
        assert record["payload"]["n"] == at
    first_status = first["response"].status_code if first.get("response") is not None else "connection lost"
    return {"kill": point, "first_answer": first_status, "stored_before_retry": stored_before_retry,
            "retries": retries, "retry_status": response.status_code,
            "stored_after": len(stored), "duplicates": len(stored) - len(set(stored))}


@needs_ferretdb
def test_a_keyed_batch_whose_answer_is_lost_is_not_stored_twice(start_service):
    """The batch commits, its answer never comes back (held by a proxy): the request is a 503
    when its database budget runs out; the retry finds every reserved id stored: 200, same ids."""
    budget_ms = 2000
    database = harness.FerretDB().start()
    name = harness.unique("wp")
    direct = Direct(database.uri, name)
    try:
        with harness.FaultProxy(database.port) as proxy:
            server = start_service(init_db=True, MONGODB_URI=proxy.uri, MONGODB_DATABASE=name,
                                   MONGODB_REQUEST_TIMEOUT_MS=str(budget_ms), MAX_CONTENT_LENGTH=BODY_LIMIT)
            source, key = harness.unique("lost"), "lost-answer"
            body = batch(source, 0)
            # The key document is ~17 KB, the records ~1 MB: answers stop during the insert.
            proxy.hold_answers_after(200_000)
            started = time.monotonic()
            first = post_batch(server.url, body, key)
            first_s = time.monotonic() - started
            assert first is not None and first.status_code == 503, first and first.text[:300]
            assert harness.wait_until(lambda: len(direct.ids_of(source)) == BATCH, 30)
            proxy.answer()
            retry = post_batch(server.url, body, key)
            reserved = [str(i) for i in direct.key(key)["record_ids"]]
            stored = [str(i) for i in direct.ids_of(source)]
    finally:
        direct.client.close()
        database.stop()
    assert retry.status_code == 200, retry.text[:300]
    assert retry.json()["ids"] == reserved
    assert sorted(stored) == sorted(reserved) and len(set(stored)) == BATCH
    assert first_s < harness.request_bound_s(budget_ms)
    harness.report("keyed 1,000-record batch, committed but its answer lost", first_answer=503,
                   first_answer_s=f"{first_s:.2f}", budget_s=budget_ms / 1000, retry_status=200,
                   stored_after=len(stored), duplicates=len(stored) - len(set(stored)))


def test_a_key_is_forgotten_after_its_ttl(start_service, mongodb_uri):
    """The server's TTL monitor removes an expired key; the same key then stores anew."""
    name = harness.unique("ttl")
    server = start_service(init_db=True, MONGODB_URI=mongodb_uri, MONGODB_DATABASE=name)
    client = MongoClient(mongodb_uri, serverSelectionTimeoutMS=5000, tz_aware=True)
    keys = client[name]["records.idempotency"]
    try:
        assert "expires_at_ttl" in keys.index_information()
        api = harness.Client(server.url)
        body = {"source": harness.unique("ttl"), "payload": {"n": 1}}
        first = expect.record(api.post("/data", json=body, headers={"Idempotency-Key": "once"}), 201)
        # Expire it now rather than in IDEMPOTENCY_TTL_SECONDS: the monitor does the rest.
        keys.update_one({"_id": f"{body['source']}/once"}, {"$currentDate": {"expires_at": True}})
        started = time.monotonic()
        forgotten = harness.wait_until(lambda: keys.count_documents({}) == 0, 150, interval=1)
        waited = time.monotonic() - started
        assert forgotten, "the TTL monitor did not remove an expired key within 150 s"
        again = expect.record(api.post("/data", json=body, headers={"Idempotency-Key": "once"}), 201)
        assert again["id"] != first["id"]
        harness.report("Idempotency-Key past its expiry", removed_after_s=f"{waited:.1f}",
                       same_key_stores_anew=True)
    finally:
        client.drop_database(name)
        client.close()


def test_a_missing_index_is_a_503_naming_init_db_never_a_500(start_service, mongodb_uri):
    name = harness.unique("noindex")
    server = start_service(MONGODB_URI=mongodb_uri, MONGODB_DATABASE=name)  # no init-db
    client = MongoClient(mongodb_uri, serverSelectionTimeoutMS=5000, tz_aware=True)
    api = harness.Client(server.url)
    try:
        readyz = expect.error(api.get("/readyz"), 503)
        assert "init-db" in readyz["message"] and "source_1__id_-1" in readyz["message"]
        expect.record(api.post("/data", json={"source": "s", "payload": {}}), 201)  # the collection exists
        page = api.get("/data", params={"source": "s"})
        assert expect.error(page, 503)["message"] == readyz["message"]
        server.init_db()
        assert api.get("/readyz").status_code == 200
        assert api.get("/data", params={"source": "s"}).status_code == 200
        harness.report("missing index", readyz=503, source_page=page.status_code)
    finally:
        client.drop_database(name)
        client.close()
