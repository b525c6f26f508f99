"""Liveness and readiness probes."""
from __future__ import annotations

import pymongo
from flask import current_app
from flask.views import MethodView
from marshmallow import Schema, fields

from ..db import repository
from ..repository import MissingIndex
from .parser import StrictBlueprint

blp = StrictBlueprint("health", __name__, description="Probes for orchestrators.")


class HealthSchema(Schema):
    """Probe result."""

    status = fields.String(metadata={"example": "ok"})


@blp.route("/healthz")
class Liveness(MethodView):
    """The process is running."""

    @blp.no_query
    @blp.response(200, HealthSchema)
    def get(self):
        """Liveness: touches no dependency"""
        return {"status": "ok"}


@blp.route("/readyz")
class Readiness(MethodView):
    """The process can serve requests."""

    @blp.no_query
    @blp.response(200, HealthSchema)
    @blp.alt_response(
        503, description="MongoDB did not answer in time, or an index is missing (see the message).")
    def get(self):
        """Readiness: MongoDB answers and the indexes the queries need exist"""
        repo = repository()
        # Within MONGODB_TIMEOUT_MS, not the request budget: an answer before the probe's
        # own timeout, and no server to select is "not ready" rather than a long wait.
        with pymongo.timeout(current_app.config["SETTINGS"].timeout_ms / 1000):
            repo.ping()  # failures become a 503 with Retry-After (errors.py)
            missing = repo.missing_indexes()
        if missing:
            raise MissingIndex(missing[0])  # the same 503 as a query that needs it
        return {"status": "ok"}
