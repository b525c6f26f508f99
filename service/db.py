"""MongoDB client lifecycle: one client per process, built lazily and fork-safe."""
from __future__ import annotations

import logging
from contextlib import ExitStack
from datetime import timezone

import mongomock
import pymongo
from flask import Flask, current_app, g
from pymongo import MongoClient
from pymongo.write_concern import WriteConcern

from .config import Settings
from .repository import RecordRepository

log = logging.getLogger(__name__)
EXTENSION = "mongodb"


def make_client(settings: Settings, listeners=()):
    """A MongoClient with bounded timeouts, or mongomock for memory://.

    connect=False defers the first connection to the first operation, so a client
    built before gunicorn forks opens its sockets in each worker, never shared.
    """
    if settings.in_memory:
        log.warning("MONGODB_URI=memory:// keeps records in this process only; they vanish on exit")
        return mongomock.MongoClient(tz_aware=True)
    return MongoClient(
        settings.mongodb_uri,
        connect=False,
        tz_aware=True,
        # Dates decode with the standard library's UTC, not bson's Python-level offset
        # class: answering a page converts 200 of them to UTC, which is then a no-op.
        tzinfo=timezone.utc,
        appname="data-ingest",
        serverSelectionTimeoutMS=settings.timeout_ms,
        connectTimeoutMS=settings.timeout_ms,
        socketTimeoutMS=settings.socket_timeout_ms,
        waitQueueTimeoutMS=settings.timeout_ms,
        maxPoolSize=settings.max_pool_size,
        retryWrites=True,
        retryReads=True,
        event_listeners=list(listeners),
    )


def make_repository(client, settings: Settings) -> RecordRepository:
    """The repository over the configured database, with the configured write concern."""
    concern = WriteConcern(w=settings.write_concern, j=None if settings.in_memory else True)
    database = client.get_database(settings.database, write_concern=concern)
    return RecordRepository(
        records=database[settings.collection],
        keys=database[f"{settings.collection}.idempotency"],
        key_ttl_seconds=settings.idempotency_ttl_seconds,
        # No attempt writes after its request's budget; twice that covers clock skew.
        abandon_after_ms=2 * settings.request_timeout_ms,
        # Reserved ids are written only within one budget of their making (the feed relies on it).
        write_window_ms=settings.request_timeout_ms,
    )


def init_app(app: Flask, settings: Settings, listeners=()) -> None:
    """Attach the client (with its command listeners) and the repository to the app.

    Every request runs inside `pymongo.timeout(MONGODB_REQUEST_TIMEOUT_MS)`: server
    selection, pool waits, sockets, and the server's own work (the driver sends the
    remaining time as maxTimeMS) of all its operations together fit in that budget.
    The CLI (init-db) is not bounded by it.
    """
    client = make_client(settings, listeners)
    repo = make_repository(client, settings)
    if settings.in_memory:
        # The in-process store is born empty with the app: no init-db can reach it.
        repo.ensure_indexes()
    app.extensions[EXTENSION] = {"client": client, "repository": repo}
    budget = settings.request_timeout_ms / 1000

    def start_budget() -> None:
        g.database_budget = ExitStack()
        g.database_budget.enter_context(pymongo.timeout(budget))

    def end_budget(_exc) -> None:
        if "database_budget" in g:
            g.database_budget.close()

    app.before_request(start_budget)
    app.teardown_request(end_budget)


def repository() -> RecordRepository:
    """The current app's repository."""
    return current_app.extensions[EXTENSION]["repository"]
