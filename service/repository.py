"""The records DAO: every MongoDB query the service makes lives here."""
from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import bson
import orjson
import pymongo
from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, DocumentTooLarge, DuplicateKeyError, OperationFailure

from .ids import first_id_of_second, made_at, new_id

SOURCE_INDEX = "source_1__id_-1"
# Reads without a source walk this index, not the built-in `_id_`: on sharded DocumentDB
# `_id_` is (shard key, _id) and cannot be walked in _id order (docs/architecture.md, "Shard key").
ID_INDEX = "_id_-1"
EXPIRY_INDEX = "expires_at_ttl"
RETENTION_INDEX = "created_at_ttl"
# Server error codes this module acts on.
DUPLICATE_KEY = 11000
MAX_TIME_EXPIRED = 50
# Deterministic refusals of a document's content, the only write errors that undo a write
# and release its key: BadValue, DocumentValidationFailure, BSONObjectTooLarge.
BSON_TOO_LARGE = 10334
REFUSAL_CODES = frozenset({2, 121, BSON_TOO_LARGE})
# MongoDB's largest document (maxBsonObjectSize); PAYLOAD_MAX_BYTES is capped below it.
MAX_BSON_BYTES = 16 * 2**20
# Failures of the moment, not of the record (time limits, a primary stepping down, a
# server shutting down, the network): a read or command that fails so is a 503.
TRANSIENT_CODES = frozenset({6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, MAX_TIME_EXPIRED})
# A key document that changes under us this many times in a row (expired, taken over)
# makes the request a 503: something is wrong, and the client's retry is safe.
RESERVE_ATTEMPTS = 3
# Batch keys live beside the per-source keys of POST /data; a source cannot start with '#'.
BATCH_SCOPE = "#batch"


class IdempotencyConflict(Exception):
    """The Idempotency-Key was already used with a different body."""


class RetryLater(Exception):
    """The key is busy: an earlier attempt may still be writing its ids, or the key document
    changed under this request (expired, taken over, renewed). The same request, a moment
    later, completes."""


class IndexConflict(RuntimeError):
    """An existing index has our name or keys but other options."""


class MissingIndex(RuntimeError):
    """An index a query needs does not exist: `init-db` has not run on this database."""

    def __init__(self, name: str):
        super().__init__(f"The index {name} is missing: run `flask --app service init-db` "
                         "(the init-db job) against this database.")


class Refused(Exception):
    """The server would not store some records; nothing of the request stays stored.

    `errors` maps each refused record's index in the request to the server's write
    error (`code`, `errmsg`); `batch` tells a batch from a single record.
    """

    def __init__(self, errors: dict[int, dict], batch: bool):
        super().__init__("the server refused records: codes " + ", ".join(
            sorted({str(e.get("code")) for e in errors.values()})))
        self.errors = errors
        self.batch = batch


@dataclass(frozen=True)
class PageQuery:
    """What one page asks for; `after` is the last id of the previous page."""

    limit: int
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after: ObjectId | None = None

    def scope(self) -> str:
        """The filters a cursor is bound to (not the limit, which may change per page).

        JSON of the three values: an absent filter is `null`, never the text "None",
        so `?source=None` and no source give different scopes.
        """
        values = [self.source, self.since and self.since.isoformat(), self.until and self.until.isoformat()]
        return orjson.dumps(values).decode()

    def id_range(self) -> dict:
        """Bounds on `_id`; created_at is the id's time, at one-second resolution."""
        bounds: dict = {}
        if self.since is not None:
            bounds["$gte"] = first_id_of_second(math.ceil(self.since.timestamp()))
        upper = [self.after] if self.after else []
        if self.until is not None:
            upper.append(first_id_of_second(math.floor(self.until.timestamp()) + 1))
        if upper:
            bounds["$lt"] = min(upper)
        return bounds


def _canonical(record: dict) -> dict:
    return {**record, "timestamp": record["timestamp"] and record["timestamp"].isoformat()}


def fingerprint(record: dict) -> str:
    """A digest of what the client sent, to tell a retry from a reused key."""
    return hashlib.sha256(orjson.dumps(_canonical(record), option=orjson.OPT_SORT_KEYS)).hexdigest()


def batch_fingerprint(records: list[dict]) -> str:
    """A digest of a whole batch, in order."""
    canonical = [_canonical(record) for record in records]
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


def to_document(record: dict, record_id: ObjectId | None = None) -> dict:
    """The stored form of a validated record: a pure function of the record and its id.

    The default timestamp is the id's time (the time of receipt, to the millisecond),
    so a retry that completes a reserved id writes exactly the document the first
    attempt would have written, and cleanup can recognise its own documents.
    """
    record_id = record_id or new_id()
    return {
        "_id": record_id,
        "source": record["source"],
        "payload": record["payload"],
        "tags": record["tags"],
        "timestamp": record["timestamp"] or made_at(record_id),
        "created_at": record_id.generation_time,
    }


def utc_now() -> datetime:
    """The repository's default clock."""
    return datetime.now(timezone.utc)


def _to_ms(moment: datetime) -> datetime:
    """`moment` at the millisecond resolution MongoDB stores (so it compares equal)."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)

# The reservation (key document) states of a keyed write, and what a request finds and does.
# The same table is in docs/reliability.md, "Reservation states"; "window" is one request
# budget from the ids' making, "abandon-after" two.
#
# | key found                                  | same body                          | other body      |
# |--------------------------------------------|------------------------------------|-----------------|
# | none (new, or expired by TTL)              | reserve fresh ids, write: 201      | same            |
# | every reserved id stored                   | replay: 200                        | 409             |
# | ids missing, within the window             | write them (duplicates settle): 201| 409             |
# | ids missing, window to abandon-after       | RetryLater: 503                    | 409             |
# | ids missing, past abandon-after            | renew missing ids, write: 201      | none stored:    |
# |                                            | (renewal lost to another: 503)     | take over, 201  |
# | write refused (REFUSAL_CODES)              | undo own, release this key: 422    | -               |
# | any other write error                      | nothing undone: 503, retry writes  | -               |
# | key changes under the request 3 times      | RetryLater: 503                    | same            |


class RecordRepository:
    """Stores and reads records; owns the indexes its queries rely on.

    Writes are all or nothing and exactly once per Idempotency-Key:
    - a key document reserves the record ids before any record is written, so a retry
      after any failure writes the same ids, and a unique `_id` in both collections
      settles concurrent retries without a transaction;
    - records are written with one unordered insert; a duplicate id on a keyed retry
      is an earlier attempt's record, already stored;
    - when the server refuses the content of a record, only documents this key or call
      stored are removed (same id and same content), never another record, and the key
      is released so a corrected body can use it; no other error undoes anything;
    - a key whose records were never written is taken over by a different body once
      no attempt can still be writing (`abandon_after`, twice the request's database
      budget, which also bounds each attempt's writes: clocks of pods may differ).

    No record becomes visible with an id older than `write_window` (the request's
    database budget), which is what lets the feed serve ids older than that for good:
    an id made in a request is written within that request's budget, a reserved id is
    written only while it is younger than the window, and a retry that finds its
    reserved ids older writes the missing records under fresh ids, recorded in the key.
    """

    def __init__(self, records: Collection, keys: Collection, key_ttl_seconds: int,
                 abandon_after_ms: int = 10_000, write_window_ms: int = 5_000,
                 clock: Callable[[], datetime] = utc_now):
        self.clock = clock  # every reading of the time on the write path and the feed's horizon
        self.records = records
        self.keys = keys
        self.key_ttl = timedelta(seconds=key_ttl_seconds)
        self.abandon_after = timedelta(milliseconds=abandon_after_ms)
        self.write_window = timedelta(milliseconds=write_window_ms)

    def insert(self, record: dict) -> dict:
        """Store one record and return its document."""
        document = to_document(record)
        self._write([document], batch=False)
        return document

    def insert_many(self, records: list[dict]) -> list[ObjectId]:
        """Store validated records in one unordered batch, all or nothing; ids in input order."""
        documents = [to_document(record) for record in records]
        self._write(documents, batch=True)
        return [document["_id"] for document in documents]

    def insert_idempotent(self, record: dict, key: str) -> tuple[dict, bool]:
        """Store a record once per (source, key); return it and whether this call stored it."""
        [document], created = self._store_once(f"{record['source']}/{key}", fingerprint(record), [record])
        if created:
            return document, True
        # With the source in the filter, a sharded cluster targets one shard.
        stored = self.records.find_one({"_id": document["_id"], "source": document["source"]})
        return stored or document, False

    def insert_many_idempotent(self, records: list[dict], key: str) -> tuple[list[ObjectId], bool]:
        """Store a batch once per key; return its ids in input order and whether this call stored any."""
        documents, created = self._store_once(f"{BATCH_SCOPE}/{key}", batch_fingerprint(records), records,
                                              batch=True)
        return [document["_id"] for document in documents], created

    def _store_once(self, key_id: str, digest: str, records: list[dict],
                    batch: bool = False) -> tuple[list[dict], bool]:
        """Write the records under the ids their key reserves; whether this call stored any."""
        reservation, fresh = self._reserve(key_id, digest, len(records))
        pending = True
        if not fresh:
            reservation, pending = self._writable(reservation)
        documents = [to_document(r, i) for r, i in zip(records, reservation["record_ids"])]
        if not pending:
            return documents, False
        # One reading of the clock: the window may close while the request runs.
        left = self._window_left(reservation)
        if left <= 0:
            raise RetryLater(reservation["_id"])
        # Nested in the request's budget, this ends the writes when the reserved ids'
        # window does, whichever comes first.
        with pymongo.timeout(left):
            return documents, self._write(documents, batch, reservation=reservation)

    def _window_left(self, reservation: dict) -> float:
        """Seconds its ids may still be written: they are made together, or renewed
        together (then the older ids are stored ones, which a write only meets as duplicates)."""
        closes = made_at(max(reservation["record_ids"])) + self.write_window
        return (closes - self.clock()).total_seconds()

    def _writable(self, reservation: dict) -> tuple[dict, bool]:
        """For a reservation an earlier attempt made: the reservation to write now, and
        whether anything is left to write.

        If every reserved id is stored (a replay) there is nothing to write. Missing ids
        younger than the window are written as they are (an earlier attempt may be
        writing them too: duplicates settle it). Older ones are never written: if no
        attempt can still be writing them (past `abandon_after`), they get fresh ids in
        one conditional update of the key; in between, the caller must retry a moment later.
        """
        ids = reservation["record_ids"]
        stored = {d["_id"] for d in self.records.find({"_id": {"$in": ids}}, {"_id": 1})}
        if len(stored) == len(ids):
            return reservation, False
        if self._window_left(reservation) > 0:
            return reservation, True
        if made_at(max(ids)) > self.clock() - self.abandon_after:
            raise RetryLater(reservation["_id"])
        fresh = [record_id if record_id in stored else new_id() for record_id in ids]
        renewed = self.keys.find_one_and_update(
            _same_reservation(reservation),
            {"$set": {"record_ids": fresh}},
            return_document=ReturnDocument.AFTER,
        )
        if renewed is None:
            raise RetryLater(reservation["_id"])  # another retry renewed it first
        return renewed, True

    def _reserve(self, key_id: str, digest: str, count: int) -> tuple[dict, bool]:
        """The key document of this request: found (same body), taken over, or new; and
        whether it was made by this call (then none of its ids can be stored yet)."""
        for _ in range(RESERVE_ATTEMPTS):
            reservation = {
                "_id": key_id,
                "fingerprint": digest,
                "record_ids": [new_id() for _ in range(count)],
                "expires_at": _to_ms(self.clock()) + self.key_ttl,
            }
            try:
                self.keys.insert_one(reservation)
                return reservation, True
            except DuplicateKeyError:
                found = self.keys.find_one({"_id": key_id})
            if found is None:
                continue  # expired between our insert and our read: reserve again
            if found["fingerprint"] == digest:
                return found, False
            if not self._abandoned(found):
                raise IdempotencyConflict(key_id)
            if self.keys.find_one_and_replace(_same_reservation(found), reservation) is not None:
                return reservation, True
        raise RetryLater(key_id)

    def _abandoned(self, reservation: dict) -> bool:
        """True if no record of the reservation exists and no attempt can still write one."""
        ids = reservation["record_ids"]
        too_old = made_at(ids[0]) < self.clock() - self.abandon_after
        return too_old and self.records.find_one({"_id": {"$in": ids}}, {"_id": 1}) is None

    def _write(self, documents: list[dict], batch: bool, reservation: dict | None = None) -> bool:
        """Insert the documents; return whether this call stored any of them.

        Only a refusal of the content (REFUSAL_CODES) undoes: it would refuse every retry.
        Any other error propagates and undoes nothing, whatever its code: a keyed retry
        may have met an earlier attempt's acknowledged records, and what was written stays
        for the next retry to complete.
        """
        try:
            self.records.insert_many(documents, ordered=False)
            return True
        except DocumentTooLarge:  # the driver's own check, before the server sees the batch
            sizes = [len(bson.encode(d)) for d in documents]
            too_large = [i for i, size in enumerate(sizes) if size > MAX_BSON_BYTES] or range(len(sizes))
            error = BulkWriteError({"writeErrors": [
                {"index": i, "code": BSON_TOO_LARGE, "errmsg": "larger than the server's BSON limit"}
                for i in too_large]})
            return self._settle(error, documents, batch, reservation)
        except BulkWriteError as error:
            return self._settle(error, documents, batch, reservation)

    def _settle(self, error: BulkWriteError, documents: list[dict], batch: bool,
                reservation: dict | None) -> bool:
        """What a failed insert leaves: undone and refused, undone as a duplicate, raised as
        it is for a retry to complete, or settled (only earlier attempts' duplicates)."""
        errors = {e["index"]: e for e in error.details.get("writeErrors", [])}
        duplicates = {i for i, e in errors.items() if e.get("code") == DUPLICATE_KEY}
        refused = {i: e for i, e in errors.items() if e.get("code") in REFUSAL_CODES}
        if refused or (duplicates and reservation is None):
            # A duplicate without a key is another record's id: undo, all or nothing.
            self._remove_own(documents)
            if reservation is not None:
                self.keys.delete_one(_same_reservation(reservation))
            if refused:
                raise Refused(refused, batch) from None
            raise DuplicateKeyError("an id of this request already exists", DUPLICATE_KEY) from None
        if len(duplicates) < len(errors) or error.details.get("writeConcernErrors"):
            raise error  # any other write error, or a write concern not confirmed: retry later
        return len(duplicates) < len(documents)

    def _remove_own(self, documents: list[dict]) -> None:
        """Delete the stored documents that are exactly ours (same id, same content).

        That is what this call inserted and what earlier attempts of the same key
        inserted (a document is a function of the record and its reserved id); a
        record of anyone else that happens to hold one of the ids differs and stays.
        """
        ours = {d["_id"]: d for d in documents}
        stored = self.records.find({"_id": {"$in": list(ours)}})
        own = [document["_id"] for document in stored if document == ours[document["_id"]]]
        if own:
            self.records.delete_many({"_id": {"$in": own}})

    def get(self, record_id: str) -> dict | None:
        """One record by its id string; None when unknown or not an ObjectId."""
        try:
            oid = ObjectId(record_id)
        except (InvalidId, TypeError):
            return None
        found = list(self._find({"_id": oid}, ID_INDEX, limit=1))
        return found[0] if found else None

    def page(self, query: PageQuery) -> Iterator[dict]:
        """Up to limit + 1 records, newest first; the extra one says a next page exists."""
        return self._walk(query.source, query.id_range(), DESCENDING, query.limit + 1)

    def feed(self, start: ObjectId, horizon: ObjectId, limit: int,
             source: str | None = None) -> Iterator[dict]:
        """Up to `limit` records with start <= id < horizon, oldest first."""
        return self._walk(source, {"$gte": start, "$lt": horizon}, ASCENDING, limit)

    def _walk(self, source: str | None, id_range: dict, direction: int, limit: int) -> Iterator[dict]:
        """One index walk: equality on source (if any), then a range on _id, in _id order.

        The index is walked from one end of the range with no in-memory sort, at any
        depth, in either direction. The hint makes a missing index an error instead of
        a collection scan. Records are read as the caller takes them, batch by batch,
        and closing the walk early closes the server's cursor: a page that reaches its
        byte budget early leaves the rest of the walk unread.
        """
        selector: dict = {} if source is None else {"source": source}
        if id_range:
            selector["_id"] = id_range
        index = SOURCE_INDEX if source is not None else ID_INDEX
        return self._find(selector, index, limit, sort=[("_id", direction)])

    def _find(self, selector: dict, index: str, limit: int, sort=None) -> Iterator[dict]:
        """The documents of a find hinted to `index`; a missing index raises MissingIndex."""
        cursor = self.records.find(selector, sort=sort, limit=limit)
        try:
            yield from cursor.hint(index)
        except OperationFailure as exc:
            if not exc.timeout and index in self.missing_indexes():
                raise MissingIndex(index) from exc
            raise
        finally:
            cursor.close()

    def missing_indexes(self) -> list[str]:
        """Indexes the queries need that do not exist (empty once `init-db` has run)."""
        present = self.records.index_information()
        return [index for index in (SOURCE_INDEX, ID_INDEX) if index not in present]

    def ping(self) -> None:
        """Raise unless the database answers."""
        self.records.database.client.admin.command("ping")

    def ensure_indexes(self) -> list[str]:
        """Create the indexes if missing (idempotent); raise IndexConflict on a mismatch."""
        try:
            created = self.records.create_indexes(
                [IndexModel([("source", ASCENDING), ("_id", DESCENDING)], name=SOURCE_INDEX),
                 IndexModel([("_id", DESCENDING)], name=ID_INDEX)]
            )
            # The TTL index that forgets Idempotency-Keys once they expire.
            created += self.keys.create_indexes(
                [IndexModel([("expires_at", ASCENDING)], name=EXPIRY_INDEX, expireAfterSeconds=0)]
            )
        except OperationFailure as exc:
            # 85 IndexOptionsConflict, 86 IndexKeySpecsConflict: never drop and recreate.
            if exc.code in (85, 86):
                raise IndexConflict(str(exc)) from exc
            raise
        return created

    def ensure_retention(self, days: int | None) -> str:
        """Make the TTL index on created_at match `days` (None: keep forever); say what it did.

        Only the index named RETENTION_INDEX is ever changed or dropped; one of that
        name on other keys is a conflict.
        """
        current = self.records.index_information().get(RETENTION_INDEX)
        seconds = None if days is None else days * 86400
        ours = current is None or (current["key"] == [("created_at", 1)] and "expireAfterSeconds" in current)
        if not ours:
            raise IndexConflict(f"{RETENTION_INDEX} exists but is not a TTL index on created_at: {current}")
        if current is None and seconds is None:
            return "retention: records are kept forever"
        if current is None:
            self.records.create_index([("created_at", ASCENDING)], name=RETENTION_INDEX,
                                      expireAfterSeconds=seconds)
            return f"retention: {RETENTION_INDEX} created, records expire after {days} days"
        if seconds is None:
            self.records.drop_index(RETENTION_INDEX)
            return f"retention: {RETENTION_INDEX} dropped, records are kept forever"
        if current["expireAfterSeconds"] != seconds:
            self.records.database.command("collMod", self.records.name,
                                          index={"name": RETENTION_INDEX, "expireAfterSeconds": seconds})
            return f"retention: {RETENTION_INDEX} changed, records expire after {days} days"
        return f"retention: records expire after {days} days (unchanged)"


def _same_reservation(reservation: dict) -> dict:
    """A filter matching this reservation only, not a later one of the same key, nor
    this one renewed under fresh ids."""
    return {"_id": reservation["_id"], "fingerprint": reservation["fingerprint"],
            "expires_at": reservation["expires_at"], "record_ids": reservation["record_ids"]}
