"""RETENTION_DAYS: init-db makes the TTL index on created_at match, and touches nothing else."""
from __future__ import annotations

import pytest

from service.db import repository
from service.repository import RETENTION_INDEX, SOURCE_INDEX


@pytest.fixture
def init_db(make_app):
    """Run init-db on one in-memory store with a given RETENTION_DAYS ("" = unset)."""
    app = make_app()
    commands: list = []
    with app.app_context():
        repo = repository()
    real = repo.records.database.command

    def command(name, *args, **kwargs):
        # mongomock has no collMod: record it and apply its one effect, as the server does.
        if name != "collMod":
            return real(name, *args, **kwargs)
        commands.append((name, *args, kwargs))
        index = kwargs["index"]
        repo.records.drop_index(index["name"])
        repo.records.create_index([("created_at", 1)], name=index["name"],
                                  expireAfterSeconds=index["expireAfterSeconds"])
        return {"ok": 1}

    repo.records.database.command = command

    def run(days: str):
        app.config["SETTINGS"] = app.config["SETTINGS"].__class__.from_env(
            {"MONGODB_URI": "memory://", "RETENTION_DAYS": days})
        result = app.test_cli_runner().invoke(args=["init-db"])
        assert result.exit_code == 0, result.output
        return result.output, repo.records.index_information(), commands
    return run


def test_unset_keeps_records_forever(init_db):
    output, indexes, _ = init_db("")
    assert RETENTION_INDEX not in indexes and "kept forever" in output


def test_days_create_the_ttl_index(init_db):
    output, indexes, _ = init_db("30")
    assert indexes[RETENTION_INDEX]["key"] == [("created_at", 1)]
    assert indexes[RETENTION_INDEX]["expireAfterSeconds"] == 30 * 86400
    assert "created" in output


def test_other_days_change_the_index_in_place_with_collmod(init_db):
    init_db("30")
    output, indexes, commands = init_db("7")
    assert commands == [("collMod", "records", {"index": {"name": RETENTION_INDEX,
                                                          "expireAfterSeconds": 7 * 86400}})]
    assert indexes[RETENTION_INDEX]["expireAfterSeconds"] == 7 * 86400 and "changed" in output


def test_the_same_days_change_nothing(init_db):
    init_db("30")
    output, _, commands = init_db("30")
    assert commands == [] and "unchanged" in output


def test_unsetting_drops_only_the_ttl_index(init_db):
    init_db("30")
    output, indexes, _ = init_db("")
    assert RETENTION_INDEX not in indexes and SOURCE_INDEX in indexes and "_id_" in indexes
    assert "dropped" in output


def test_an_index_of_that_name_on_other_keys_is_a_conflict_and_stays(make_app):
    app = make_app(RETENTION_DAYS="3")
    with app.app_context():
        repository().records.create_index([("source", 1)], name=RETENTION_INDEX)
    result = app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 1 and "index conflict" in result.output
    with app.app_context():
        assert repository().records.index_information()[RETENTION_INDEX]["key"] == [("source", 1)]


@pytest.mark.parametrize("days", ["0", "-1", "x", "36501"])
def test_invalid_days_stop_the_service(make_app, days):
    with pytest.raises(SystemExit, match="RETENTION_DAYS"):
        make_app(RETENTION_DAYS=days)
