"""Bulk-load a collection to a given volume with ~1 KiB records, straight through pymongo.

Record i of a volume is a pure function of i: its id (hence its time), source and
payload. So the harness can name the record at any depth, or any uniformly drawn
id, without reading the collection back, and growing 10k -> 100k -> 1M only adds
the missing values of i. Record i was created STEP_MICROS after record i - 1, from
EPOCH: a billion of them end years ago, so records POSTed during a run sort above
them, and `since`/`until` select real slices.
"""
from __future__ import annotations

import random
import time
from datetime import datetime, timezone

from bson import ObjectId
from pymongo.collection import Collection

# Fixed, so that a volume is the same records on every machine and every run.
EPOCH = datetime(2020, 1, 1, tzinfo=timezone.utc)
STEP_MICROS = 100_000
SOURCES = 8
BATCH = 5_000
# Filler that makes a stored record about 1 KiB of BSON, like the POSTed ones.
PAYLOAD_TEXT = "x" * 840


def record_id(i: int) -> ObjectId:
    """The id of record i: ids grow with i, laid out like service.ids (seconds, microseconds, ...)."""
    micros = int(EPOCH.timestamp()) * 1_000_000 + i * STEP_MICROS
    seconds, micro = divmod(micros, 1_000_000)
    return ObjectId(seconds.to_bytes(4, "big") + micro.to_bytes(3, "big") + b"\xbe\x0c"
                    + (i % 2**24).to_bytes(3, "big"))


def document(i: int) -> dict:
    """Record i as stored by the service."""
    oid = record_id(i)
    created = oid.generation_time
    return {
        "_id": oid,
        "source": f"bench-{i % SOURCES}",
        "payload": {"seq": i, "kind": "preload", "text": PAYLOAD_TEXT},
        "tags": ["bench", "preload"],
        "timestamp": created,
        "created_at": created,
    }


def payload_body() -> dict:
    """The body the load generator POSTs: the same shape and size as a preloaded record."""
    return {"source": "bench-post", "payload": {"kind": "post", "text": PAYLOAD_TEXT},
            "tags": ["bench", "post"]}


def grow(collection: Collection, present: int, volume: int) -> dict:
    """Insert records [present, volume) in unordered batches; return what it took."""
    start = time.perf_counter()
    for low in range(present, volume, BATCH):
        collection.insert_many([document(i) for i in range(low, min(low + BATCH, volume))], ordered=False)
    seconds = time.perf_counter() - start
    added = max(0, volume - present)
    return {"volume": volume, "added": added, "seconds": round(seconds, 1),
            "records_per_second": round(added / seconds) if added and seconds else None}


def sample_indexes(volume: int, count: int, seed: int) -> list[int]:
    """`count` record indexes drawn uniformly from [0, volume)."""
    rng = random.Random(seed)
    return [rng.randrange(volume) for _ in range(count)]
