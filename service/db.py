"""MongoDB client lifecycle: one client per process, built lazily and fork-safe."""
from __future__ import annotations

import logging

import mongomock
from flask import Flask, current_app
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
    )


def init_app(app: Flask, settings: Settings, listeners=()) -> None:
    """Attach the client (with its command listeners) and the repository to the app."""
    client = make_client(settings, listeners)
    app.extensions[EXTENSION] = {"client": client, "repository": make_repository(client, settings)}


def repository() -> RecordRepository:
    """The current app's repository."""
    return current_app.extensions[EXTENSION]["repository"]
