"""Test data and helpers shared by the unit tests and the integration suite."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

from pymongo.errors import BulkWriteError


def bearer(key: str) -> dict:
    """The Authorization header of an API key."""
    return {"Authorization": f"Bearer {key}"}


def stored(app) -> list[dict]:
    """Every stored record of `app`, oldest id first."""
    from service.db import repository
    with app.app_context():
        return list(repository().records.find({}, sort=[("_id", 1)]))


class Clock:
    """A clock to pass in: the real time shifted by `offset`, or a queue of readings to give
    in turn (then the last one again)."""

    def __init__(self, offset: timedelta = timedelta(0)):
        self.offset = offset
        self.readings: list[datetime] = []
        self.taken = 0

    def __call__(self) -> datetime:
        self.taken += 1
        if self.readings:
            return self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]
        return datetime.now(timezone.utc) + self.offset


class Inserts:
    """Scripted faults for one collection's `insert_many`: the next calls run the queued steps.

    A step is `step(real, documents, **kwargs)`, where `real` is the collection's own
    insert_many; once the queue is empty, inserts are real again. Steps may run in other
    threads, in the order the inserts arrive.
    """

    def __init__(self, monkeypatch, collection):
        self.real = collection.insert_many
        self.steps: list = []
        self.lock = threading.Lock()
        monkeypatch.setattr(collection, "insert_many", self._insert)

    def then(self, *steps) -> "Inserts":
        """Queue steps, one per coming insert."""
        self.steps.extend(steps)
        return self

    def _insert(self, documents, **kwargs):
        with self.lock:
            step = self.steps.pop(0) if self.steps else None
        if step is None:
            return self.real(documents, **kwargs)
        return step(self.real, documents, **kwargs)


def crash(stored: int, error: Exception):
    """A step: the first `stored` documents are written, then `error` is raised."""
    def step(real, documents, **kwargs):
        if stored:
            real(documents[:stored], **kwargs)
        raise error
    return step


def answer(code: int, *indexes: int, errmsg: str = "refused"):
    """A step: the server answers `code` for the documents at `indexes` and writes the others
    (their own duplicate errors kept); the default, every document."""
    def step(real, documents, **kwargs):
        failing = set(indexes or range(len(documents)))
        kept = [i for i in range(len(documents)) if i not in failing]
        errors = [{"index": i, "code": code, "errmsg": errmsg} for i in sorted(failing)]
        try:
            if kept:
                real([documents[i] for i in kept], **kwargs)
        except BulkWriteError as error:  # renumber as in the whole request
            errors += [{**e, "index": kept[e["index"]]} for e in error.details["writeErrors"]]
        raise BulkWriteError({"writeErrors": errors, "writeConcernErrors": []})
    return step


def meet(arrived: threading.Event, proceed: threading.Event, step=None,
         done: threading.Event | None = None):
    """A step that orders two requests: set `arrived`, wait for `proceed`, run `step`
    (default: the real insert), then set `done`."""
    def wrapped(real, documents, **kwargs):
        arrived.set()
        assert proceed.wait(10), "the other request never reached its point"
        try:
            return (step or _real)(real, documents, **kwargs)
        finally:
            if done is not None:
                done.set()
    return wrapped


def _real(real, documents, **kwargs):
    return real(documents, **kwargs)
