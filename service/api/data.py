"""The /data resource: store records and read them back."""
from __future__ import annotations

from dataclasses import replace

from flask import current_app, url_for
from flask.views import MethodView
from flask_smorest import abort

from .. import cursor
from ..auth import SCHEME_NAME, require_key
from ..db import repository
from ..repository import PageQuery
from ..schemas import (
    BatchInSchema, BatchOutSchema, IdempotencyHeaderSchema, RecordInSchema,
    RecordPageSchema, RecordQuerySchema, RecordSchema, record_json_size,
)
from .parser import StrictBlueprint

blp = StrictBlueprint("data", __name__, url_prefix="/data", description="Store and read JSON records.")

blp.before_request(require_key)

UNAVAILABLE = {"description": "The database is unavailable or too slow, or an index is missing "
                              "(the message says to run init-db); see Retry-After.",
               "headers": {"Retry-After": {"schema": {"type": "integer"}}}}


def protected(view):
    """Document that the view needs an API key when keys are configured."""
    view = blp.doc(security=[{SCHEME_NAME: []}])(view)
    view = blp.alt_response(401, description="No API key, or an unknown one.")(view)
    return blp.alt_response(403, description="The API key lacks the scope.")(view)


def fit_page(documents: list[dict], limit: int, budget: int) -> tuple[list[dict], bool]:
    """The first records within `limit` and about `budget` bytes of JSON, and whether more follow.

    A page holds at least one record, so a walk always advances (one record is at most
    about PAYLOAD_MAX_BYTES, far below any allowed budget).
    """
    size = 0
    for count, document in enumerate(documents[:limit]):
        size += record_json_size(document)
        if size > budget and count:
            return documents[:count], True
    return documents[:limit], len(documents) > limit


def _created(document: dict, status: int):
    location = url_for("data.RecordItem", record_id=str(document["_id"]))
    return document, status, {"Location": location}


@blp.route("")
class Records(MethodView):
    """The collection of records."""

    @protected
    @blp.no_query
    @blp.arguments(RecordInSchema)
    @blp.arguments(IdempotencyHeaderSchema, location="headers", as_kwargs=True)
    @blp.response(201, RecordSchema, headers={"Location": {"schema": {"type": "string"}}})
    @blp.alt_response(200, schema=RecordSchema, description="A retry of an earlier Idempotency-Key.")
    @blp.alt_response(409, description="The Idempotency-Key was used with a different body.")
    @blp.alt_response(413, description="The body is larger than MAX_CONTENT_LENGTH.")
    @blp.alt_response(415, description="The body is not application/json.")
    @blp.alt_response(400, description="The body is not standard JSON.")
    @blp.alt_response(503, **UNAVAILABLE)
    def post(self, record, idempotency_key=None):
        """Store one record

        With an Idempotency-Key, a retry with the same body returns the first record
        with status 200 and stores nothing new.
        """
        if idempotency_key is None:
            return _created(repository().insert(record), 201)
        document, created = repository().insert_idempotent(record, idempotency_key)
        return _created(document, 201 if created else 200)

    @protected
    @blp.arguments(RecordQuerySchema, location="query", unknown="raise")
    @blp.response(200, RecordPageSchema)
    @blp.alt_response(503, **UNAVAILABLE)
    def get(self, args):
        """List records, newest first

        Pass `next_cursor` of a page as `cursor` to get the next one; it is null
        on the last page. A cursor works only with the filters it was made with.
        """
        key = current_app.config["CURSOR_KEY"]
        query = PageQuery(limit=args["limit"], source=args.get("source"),
                          since=args.get("since"), until=args.get("until"))
        if "cursor" in args:
            try:
                after = cursor.decode(args["cursor"], query.scope(), key)
            except cursor.InvalidCursor as exc:
                abort(422, errors={"query": {"cursor": [str(exc)]}}, message="Invalid cursor.")
            query = replace(query, after=after)
        documents = repository().page(query)
        items, more = fit_page(documents, query.limit, current_app.config["PAGE_MAX_BYTES"])
        next_cursor = cursor.encode(items[-1]["_id"], query.scope(), key) if more else None
        return {"items": items, "next_cursor": next_cursor}


@blp.route("/<record_id>")
class RecordItem(MethodView):
    """One record."""

    @protected
    @blp.no_query
    @blp.response(200, RecordSchema)
    @blp.alt_response(404, description="No record has this id.")
    @blp.alt_response(503, **UNAVAILABLE)
    def get(self, record_id):
        """Read one record by id"""
        document = repository().get(record_id)
        if document is None:
            abort(404, message="No record has this id.")
        return document


@blp.route("/batch")
class RecordBatch(MethodView):
    """Many records in one request."""

    @protected
    @blp.no_query
    @blp.arguments(BatchInSchema)
    @blp.arguments(IdempotencyHeaderSchema, location="headers", as_kwargs=True)
    @blp.response(201, BatchOutSchema)
    @blp.alt_response(200, schema=BatchOutSchema, description="A retry of an earlier Idempotency-Key.")
    @blp.alt_response(409, description="The Idempotency-Key was used with a different body.")
    @blp.alt_response(413, description="The body is larger than MAX_CONTENT_LENGTH.")
    @blp.alt_response(415, description="The body is not application/json.")
    @blp.alt_response(400, description="The body is not standard JSON.")
    @blp.alt_response(503, **UNAVAILABLE)
    def post(self, batch, idempotency_key=None):
        """Store up to BATCH_MAX_RECORDS records, all or nothing

        Every record is validated first; one invalid record rejects the batch
        (422, errors per index) and nothing is stored. With an Idempotency-Key, a
        retry with the same body completes the batch to the same ids (201 if it
        stored any, 200 if all were stored before) and never stores a record twice.
        """
        if idempotency_key is None:
            ids, created = repository().insert_many(batch["records"]), True
        else:
            ids, created = repository().insert_many_idempotent(batch["records"], idempotency_key)
        return {"ids": [str(record_id) for record_id in ids]}, 201 if created else 200
