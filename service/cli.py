"""Operator commands: `flask --app service init-db` and `shard-collection`."""
from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext

from .db import repository
from .repository import IndexConflict


@click.command("init-db")
@with_appcontext
def init_db() -> None:
    """Create the indexes the queries rely on (idempotent; fails on a conflicting index)."""
    try:
        created = repository().ensure_indexes()
    except IndexConflict as exc:
        raise click.ClickException(f"index conflict, nothing changed: {exc}") from exc
    click.echo(f"indexes ready: {', '.join(created)}")


@click.command("shard-collection")
@with_appcontext
def shard_collection() -> None:
    """Shard the records on {source: 1, _id: 1} (run once, against mongos)."""
    records = repository().records
    admin = records.database.client.admin
    admin.command("enableSharding", records.database.name)
    admin.command("shardCollection", records.full_name, key={"source": 1, "_id": 1})
    click.echo(f"sharded {records.full_name} on {{source: 1, _id: 1}}")


def init_app(app: Flask) -> None:
    """Register the commands."""
    app.cli.add_command(init_db)
    app.cli.add_command(shard_collection)
