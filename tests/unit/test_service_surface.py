"""Probes, OpenAPI document, Swagger UI served without a CDN, operator commands."""
from __future__ import annotations

import pytest

from service.db import repository
from service.repository import IndexConflict


def test_probes(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {"status": "ok"}


def test_openapi_documents_every_route_and_status(client):
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.1")
    paths = spec["paths"]
    assert set(paths) == {"/data", "/data/{record_id}", "/data/batch", "/data/feed", "/healthz", "/readyz"}
    post = set(paths["/data"]["post"]["responses"])
    assert {"201", "200", "400", "409", "413", "415", "422", "503"} <= post
    assert {"200", "422", "503"} <= set(paths["/data"]["get"]["responses"])
    assert {"200", "404", "503"} <= set(paths["/data/{record_id}"]["get"]["responses"])
    assert {"201", "422", "503"} <= set(paths["/data/batch"]["post"]["responses"])
    assert {"200", "503"} <= set(paths["/readyz"]["get"]["responses"])
    query = {p["name"] for p in paths["/data"]["get"]["parameters"]}
    assert query == {"limit", "cursor", "source", "since", "until"}


def test_swagger_ui_is_served_locally(client):
    page = client.get("/docs").get_data(as_text=True)
    assert "/docs/assets/swagger-ui-bundle.js" in page and "http" not in page.split("<body>")[1]
    for asset in ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css"):
        assert client.get(f"/docs/assets/{asset}").status_code == 200
    assert client.get("/docs/static/swagger-init.js").status_code == 200
    assert client.get("/docs/assets/missing.js").status_code == 404


def test_init_db_is_idempotent(app):
    runner = app.test_cli_runner()
    first, second = runner.invoke(args=["init-db"]), runner.invoke(args=["init-db"])
    assert first.exit_code == 0 and second.exit_code == 0
    assert "source_1__id_-1" in first.output and "_id_-1" in first.output
    with app.app_context():
        indexes = repository().records.index_information()
    assert list(dict(indexes["source_1__id_-1"]["key"]).items()) == [("source", 1), ("_id", -1)]
    assert list(dict(indexes["_id_-1"]["key"]).items()) == [("_id", -1)]


def test_init_db_fails_loudly_on_a_conflicting_index(app, monkeypatch):
    def conflict():
        raise IndexConflict("source_1__id_-1 exists with different options")
    with app.app_context():
        monkeypatch.setattr(repository(), "ensure_indexes", conflict)
    result = app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 1
    assert "index conflict" in result.output


def test_ensure_indexes_maps_conflicts(app, monkeypatch):
    from pymongo.errors import OperationFailure
    with app.app_context():
        repo = repository()
    for code, expected in ((85, IndexConflict), (86, IndexConflict), (13, OperationFailure)):
        def refuse(models, code=code):
            raise OperationFailure("refused", code=code)
        monkeypatch.setattr(repo.records, "create_indexes", refuse)
        with pytest.raises(expected):
            repo.ensure_indexes()


def test_shard_collection_issues_the_admin_commands(app, monkeypatch):
    calls = []
    with app.app_context():
        admin = repository().records.database.client.admin
        monkeypatch.setattr(admin, "command", lambda *args, **kwargs: calls.append((args, kwargs)))
    result = app.test_cli_runner().invoke(args=["shard-collection"])
    assert result.exit_code == 0
    assert calls == [
        (("enableSharding", "ingest"), {}),
        (("shardCollection", "ingest.records"), {"key": {"source": 1, "_id": "hashed"}}),
        (("shardCollection", "ingest.records.idempotency"), {"key": {"_id": "hashed"}}),
    ]


def test_swagger_ui_can_render_openapi_3_1():
    from service.api.docs import DIST
    assert (DIST / "VERSION").read_text().strip().startswith("v5.")
