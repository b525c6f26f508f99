"""Time-ordered ObjectIds, and what their order does and does not promise.

A driver ObjectId is (seconds, per-process random, counter): ids made in the same
second by different workers or pods sort by process, not by time. Ids here carry
microseconds after the seconds: (seconds, microseconds, per-process random,
counter). They are still valid ObjectIds, `generation_time` still works, and
`ObjectId.from_datetime` still gives correct range bounds.

What the order promises, exactly:
- within one process, ids increase in the order they are made while the clock
  does not step back (the counter breaks ties inside a microsecond; it wraps once
  every 16.7 million ids);
- across processes and pods, ids follow the clocks of the machines that made them:
  two ids made further apart than the clock skew between those machines sort by
  time; closer than that, in either order;
- an id is made before its record is written, so records become visible in an
  order that is not the id order: a slow write (up to the request's database
  budget, `MONGODB_REQUEST_TIMEOUT_MS`) or a retry that completes an
  `Idempotency-Key` reserved earlier (up to `IDEMPOTENCY_TTL_SECONDS`) stores a
  record whose id is older than ids already visible.
A page walk therefore returns every record that existed when the walk started and
each at most once, but "everything after id X" read later can miss a record that
committed late with an id below X. docs/architecture.md, "Ordering", has the detail.
"""
from __future__ import annotations

import itertools
import os
import threading
import time
from datetime import datetime, timedelta

from bson import ObjectId

_lock = threading.Lock()
_state = {"pid": None, "random": b"", "counter": itertools.count()}


def _process_random() -> bytes:
    """Two random bytes per process, renewed after a fork (gunicorn workers)."""
    if _state["pid"] != os.getpid():
        _state.update(pid=os.getpid(), random=os.urandom(2),
                      counter=itertools.count(int.from_bytes(os.urandom(3), "big")))
    return _state["random"]


def new_id() -> ObjectId:
    """Make an ObjectId that sorts by creation time to the microsecond."""
    with _lock:
        # Read the clock under the lock: ids of one process then never go backwards
        # between two threads (the counter alone would not order them).
        now = time.time_ns() // 1000
        random = _process_random()
        counter = next(_state["counter"]) % 2**24
    seconds, micros = divmod(now, 1_000_000)
    return ObjectId(
        seconds.to_bytes(4, "big") + micros.to_bytes(3, "big") + random + counter.to_bytes(3, "big")
    )


def made_at(record_id: ObjectId) -> datetime:
    """When `new_id` made this id, to the millisecond (MongoDB's date resolution)."""
    micros = min(int.from_bytes(record_id.binary[4:7], "big"), 999_999)
    return record_id.generation_time + timedelta(milliseconds=micros // 1000)
