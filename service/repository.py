"""The records DAO: every MongoDB query the service makes lives here."""
from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import orjson
from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from .ids import new_id

log = logging.getLogger(__name__)
SOURCE_INDEX = "source_1__id_-1"
NOT_IMPLEMENTED = 238
ID_INDEX = "_id_"
EXPIRY_INDEX = "expires_at_ttl"


class IdempotencyConflict(Exception):
    """The Idempotency-Key was already used with a different body."""


class IndexConflict(RuntimeError):
    """An existing index has our name or keys but other options."""


@dataclass(frozen=True)
class PageQuery:
    """What one page asks for; `after` is the last id of the previous page."""

    limit: int
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after: ObjectId | None = None

    def scope(self) -> str:
        """The filters a cursor is bound to (not the limit, which may change per page)."""
        return "|".join(str(v) for v in (self.source, self.since, self.until))

    def id_range(self) -> dict:
        """Bounds on `_id`; created_at is the id's time, at one-second resolution."""
        bounds: dict = {}
        if self.since is not None:
            bounds["$gte"] = _first_id_of(math.ceil(self.since.timestamp()))
        upper = [self.after] if self.after else []
        if self.until is not None:
            upper.append(_first_id_of(math.floor(self.until.timestamp()) + 1))
        if upper:
            bounds["$lt"] = min(upper)
        return bounds


def _first_id_of(second: int) -> ObjectId:
    """The smallest id made in a Unix second, clamped to what ids hold (1970 to 2106)."""
    return ObjectId(min(max(second, 0), 2**32 - 1).to_bytes(4, "big") + bytes(8))


def fingerprint(record: dict) -> str:
    """A digest of what the client sent, to tell a retry from a reused key."""
    canonical = {**record, "timestamp": record["timestamp"] and record["timestamp"].isoformat()}
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _now_ms() -> datetime:
    """The current UTC time at the millisecond resolution MongoDB stores."""
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def to_document(record: dict, record_id: ObjectId | None = None) -> dict:
    """The stored form of a validated record."""
    record_id = record_id or new_id()
    created_at = record_id.generation_time
    return {
        "_id": record_id,
        "source": record["source"],
        "payload": record["payload"],
        "tags": record["tags"],
        "timestamp": record["timestamp"] or _now_ms(),
        "created_at": created_at,
    }


class RecordRepository:
    """Stores and reads records; owns the indexes its queries rely on."""

    def __init__(self, records: Collection, keys: Collection, key_ttl_seconds: int):
        self.records = records
        self.keys = keys
        self.key_ttl = timedelta(seconds=key_ttl_seconds)

    def insert(self, record: dict) -> dict:
        """Store one record and return its document."""
        document = to_document(record)
        self.records.insert_one(document)
        return document

    def insert_many(self, records: list[dict]) -> list[ObjectId]:
        """Store validated records in one unordered batch; ids in input order."""
        documents = [to_document(record) for record in records]
        ids = [document["_id"] for document in documents]
        try:
            self.records.insert_many(documents, ordered=False)
        except BulkWriteError as error:
            # A server that refuses some records (FerretDB: '.' in keys, nested arrays)
            # has stored the others: remove them, so that a batch stays all or nothing.
            if error.details.get("writeErrors"):
                self.records.delete_many({"_id": {"$in": ids}})
            raise
        return ids

    def insert_idempotent(self, record: dict, key: str) -> tuple[dict, bool]:
        """Store a record once per (source, key); return it and whether this call stored it.

        The key document reserves the record's id before the record is written, so a
        retry after a crash between the two writes stores the same id, and concurrent
        retries race on a unique `_id` in both collections instead of on a transaction.
        """
        digest = fingerprint(record)
        reserved = {
            "_id": f"{record['source']}/{key}",
            "record_id": new_id(),
            "fingerprint": digest,
            "expires_at": datetime.now(timezone.utc) + self.key_ttl,
        }
        try:
            self.keys.insert_one(reserved)
        except DuplicateKeyError:
            reserved = self.keys.find_one({"_id": reserved["_id"]}) or reserved
            if reserved["fingerprint"] != digest:
                raise IdempotencyConflict(key) from None
        document = to_document(record, reserved["record_id"])
        try:
            self.records.insert_one(document)
        except DuplicateKeyError:
            # With the source in the filter, a sharded cluster targets one shard.
            query = {"_id": document["_id"], "source": document["source"]}
            return self.records.find_one(query), False
        return document, True

    def get(self, record_id: str) -> dict | None:
        """One record by its id string; None when unknown or not an ObjectId."""
        try:
            oid = ObjectId(record_id)
        except (InvalidId, TypeError):
            return None
        return self.records.find_one({"_id": oid})

    def page(self, query: PageQuery) -> list[dict]:
        """Up to limit + 1 records, newest first; the extra one says a next page exists.

        The filter is equality on source then a range on _id, sorted on _id: the index
        is walked from one end with no in-memory sort, whatever the depth. The hint
        makes a missing index an error instead of a collection scan.
        """
        selector: dict = {}
        if query.source is not None:
            selector["source"] = query.source
        id_range = query.id_range()
        if id_range:
            selector["_id"] = id_range
        cursor = self.records.find(selector, sort=[("_id", DESCENDING)], limit=query.limit + 1)
        return list(cursor.hint(SOURCE_INDEX if query.source is not None else ID_INDEX))

    def ping(self) -> None:
        """Raise unless the database answers."""
        self.records.database.client.admin.command("ping")

    def _ensure_key_expiry(self) -> list[str]:
        """The TTL index that forgets Idempotency-Keys, where the server has TTL indexes.

        FerretDB 1.x (the local integration server) answers NotImplemented: there keys
        are kept, which only means a retry is recognised for longer.
        """
        try:
            return self.keys.create_indexes(
                [IndexModel([("expires_at", ASCENDING)], name=EXPIRY_INDEX, expireAfterSeconds=0)]
            )
        except OperationFailure as exc:
            if exc.code != NOT_IMPLEMENTED:
                raise
            log.warning("the server has no TTL indexes: Idempotency-Keys will not expire")
            return []

    def ensure_indexes(self) -> list[str]:
        """Create the indexes if missing (idempotent); raise IndexConflict on a mismatch."""
        try:
            created = self.records.create_indexes(
                [IndexModel([("source", ASCENDING), ("_id", DESCENDING)], name=SOURCE_INDEX)]
            )
            created += self._ensure_key_expiry()
        except OperationFailure as exc:
            # 85 IndexOptionsConflict, 86 IndexKeySpecsConflict: never drop and recreate.
            if exc.code in (85, 86):
                raise IndexConflict(str(exc)) from exc
            raise
        return created
