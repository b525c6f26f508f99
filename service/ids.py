"""Time-ordered ObjectIds.

A driver ObjectId is (seconds, per-process random, counter): ids made in the same
second by different workers or pods sort by process, not by time. Pagination walks
`_id` downwards and promises that records created during a walk do not show up in
it, so ids here carry microseconds after the seconds: (seconds, microseconds,
per-process random, counter). They are still valid ObjectIds, `generation_time`
still works, and `ObjectId.from_datetime` still gives correct range bounds.
"""
from __future__ import annotations

import itertools
import os
import threading
import time

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
    now = time.time_ns() // 1000
    seconds, micros = divmod(now, 1_000_000)
    with _lock:
        random = _process_random()
        counter = next(_state["counter"]) % 2**24
    return ObjectId(
        seconds.to_bytes(4, "big") + micros.to_bytes(3, "big") + random + counter.to_bytes(3, "big")
    )
