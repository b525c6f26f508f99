"""The feed: every record exactly once, oldest first, resumable from a checkpoint.

A checkpoint is a position: the smallest id the next page may return. It is signed
(with key rotation) and bound to the feed's `source` with the cursor codec (`service/cursor.py`), under a
scope that no page cursor of `GET /data` has, so neither passes for the other.

Exactly once rests on the settle horizon. A page returns ids in [position, horizon),
where horizon is the first id of `now - FEED_SETTLE_SECONDS`; the write path never
makes a record visible with an id older than the request budget, and the window
also covers the clock skew between pods (`config.py`, docs/architecture.md "Feed").
So when a page is read, every record below its horizon that will ever exist already
does, and the position only moves past ids that were returned.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta

import orjson
from bson import ObjectId

from . import cursor
from .ids import first_id_at, first_id_of_second, successor

START = ObjectId(bytes(12))


class InvalidCheckpoint(ValueError):
    """The `after` token was not made by this service for this source."""


def _scope(source: str | None) -> str:
    return orjson.dumps(["feed", source]).decode()


def checkpoint(position: ObjectId, source: str | None, keys: cursor.Keys) -> str:
    """The token that resumes the feed of `source` at `position`."""
    return cursor.encode(position, _scope(source), keys)


def start_of(args: dict, keys: cursor.Keys) -> ObjectId:
    """Where a page starts: the `after` checkpoint, the first id of `since`, or the oldest."""
    if "after" in args:
        try:
            return cursor.decode(args["after"], _scope(args.get("source")), keys)
        except cursor.InvalidCursor:
            raise InvalidCheckpoint("not a checkpoint of this feed: altered, or made for another source") \
                from None
    if "since" in args:
        # created_at is the id's second, as for GET /data: the first id of the next whole second.
        return first_id_of_second(math.ceil(args["since"].timestamp()))
    return START


def horizon(settle_seconds: int, now: datetime) -> ObjectId:
    """The first id the feed must not serve yet: ids below it will not appear any more."""
    return first_id_at(now - timedelta(seconds=settle_seconds))


def resume_after(last_id: ObjectId | None, start: ObjectId) -> ObjectId:
    """The position after a page: past its last record, or where it started if it is empty."""
    return start if last_id is None else successor(last_id)
