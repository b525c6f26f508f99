"""Operator commands: `flask --app service init-db` and `shard-collection`."""
from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from .db import repository
from .repository import IndexConflict


@click.command("init-db")
@with_appcontext
def init_db() -> None:
    """Create the indexes the queries rely on, and match the TTL index to RETENTION_DAYS.

    Idempotent; fails on a conflicting index and never drops any index but the
    retention one.
    """
    try:
        created = repository().ensure_indexes()
        retention = repository().ensure_retention(current_app.config["SETTINGS"].retention_days)
    except IndexConflict as exc:
        raise click.ClickException(f"index conflict, no existing index changed: {exc}") from exc
    click.echo(f"indexes ready: {', '.join(created)}")
    click.echo(retention)


# source first: a page of one producer targets only the chunks of that producer;
# the hashed _id spreads one producer's (time-ordered) inserts over many chunks, so
# no shard takes every write and no chunk grows too large to split. Rationale and
# alternatives: docs/architecture.md, "Shard key".
RECORDS_SHARD_KEY = {"source": 1, "_id": "hashed"}
# Keys are looked up by exact _id only.
KEYS_SHARD_KEY = {"_id": "hashed"}


@click.command("shard-collection")
@with_appcontext
def shard_collection() -> None:
    """Shard the records and the idempotency keys (run once, through mongos)."""
    repo = repository()
    admin = repo.records.database.client.admin
    admin.command("enableSharding", repo.records.database.name)
    for collection, key in ((repo.records, RECORDS_SHARD_KEY), (repo.keys, KEYS_SHARD_KEY)):
        admin.command("shardCollection", collection.full_name, key=key)
        click.echo(f"sharded {collection.full_name} on {key}")


def init_app(app: Flask) -> None:
    """Register the commands."""
    app.cli.add_command(init_db)
    app.cli.add_command(shard_collection)
