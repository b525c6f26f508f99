"""The /data resource: store records and read them back."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import wraps

import orjson
from bson import ObjectId
from flask import Response, current_app, jsonify, request, url_for
from flask.views import MethodView
from flask_smorest import abort

from .. import cursor, feed
from ..auth import SCHEME_NAME, require_key
from ..db import repository
from ..repository import PageQuery
from ..schemas import (
    BatchInSchema, BatchOutSchema, FeedPageSchema, FeedQuerySchema, IdempotencyHeaderSchema,
    RecordInSchema, RecordPageSchema, RecordQuerySchema, RecordSchema, record_json,
)
from .parser import StrictBlueprint

blp = StrictBlueprint("data", __name__, url_prefix="/data", description="Store and read JSON records.")

blp.before_request(require_key)

UNAVAILABLE = {"description": "The database is unavailable or too slow, or an index is missing "
                              "(the message says to run init-db); see Retry-After.",
               "headers": {"Retry-After": {"schema": {"type": "integer"}}}}


# Every status a /data route may answer besides its success, described once.
RESPONSES = {
    400: {"description": "The body is not standard JSON."},
    404: {"description": "No record has this id."},
    409: {"description": "The Idempotency-Key was used with a different body."},
    413: {"description": "The body is larger than MAX_CONTENT_LENGTH."},
    415: {"description": "The body is not application/json."},
    503: UNAVAILABLE,
}
WRITE_ERRORS = (400, 409, 413, 415, 503)


def other_responses(*statuses: int):
    """Document the statuses a view may answer besides its success (RESPONSES)."""
    def document(view):
        for status in statuses:
            view = blp.alt_response(status, **RESPONSES[status])(view)
        return view
    return document


def protected(view):
    """Document that the view needs an API key when keys are configured."""
    view = blp.doc(security=[{SCHEME_NAME: []}])(view)
    view = blp.alt_response(401, description="No API key, or an unknown one.")(view)
    return blp.alt_response(403, description="The API key lacks the scope.")(view)


@dataclass
class Page:
    """Records fitted to a page: each encoded as the answer carries it, and the last one's id."""

    parts: list[bytes] = field(default_factory=list)
    last_id: ObjectId | None = None
    more: bool = False

    def answer(self, **rest) -> Response:
        """The JSON answer: {"items": [the records, as encoded], **rest}."""
        return jsonify({"items": [orjson.Fragment(part) for part in self.parts], **rest})


def fit_page(documents: Iterable[dict], limit: int, budget: int) -> Page:
    """The first records within `limit` and `budget` bytes of JSON, and whether more follow.

    Records are taken and encoded one at a time and the rest of `documents` is left
    unread (a walk is closed), so a page of large records stops reading at its budget.
    A page holds at least one record, so a walk always advances (one record is at most
    about PAYLOAD_MAX_BYTES, far below any allowed budget).
    """
    page, size = Page(), 0
    walk = iter(documents)
    try:
        for document in walk:
            if len(page.parts) == limit:
                page.more = True
                break
            part = record_json(document)
            size += len(part) + 1  # and its comma
            if size > budget and page.parts:
                page.more = True
                break
            page.parts.append(part)
            page.last_id = document["_id"]
        return page
    finally:
        getattr(walk, "close", lambda: None)()  # a walk's server cursor; a list has none


def record_answer(document: dict) -> Response:
    """One record as JSON (RecordSchema's contract, encoded by record_json)."""
    return current_app.response_class(record_json(document), mimetype="application/json")


# Records never change: a private cache (a browser, a client library) may keep one for
# a year without asking again; shared caches may not (responses can need an API key).
IMMUTABLE = "private, max-age=31536000, immutable"
CACHEABLE = {"description": "The record; cache it privately, revalidate with If-None-Match.",
             "headers": {"ETag": {"schema": {"type": "string"}, "description": "strong entity tag"},
                         "Cache-Control": {"schema": {"type": "string"}, "example": IMMUTABLE}}}


def cacheable(view):
    """Give the view's 200 a strong ETag (a digest of the body) and a Cache-Control for a
    private cache; answer a matching If-None-Match with 304 and no body."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        response = view(*args, **kwargs)
        response.add_etag()
        response.headers["Cache-Control"] = IMMUTABLE
        return response.make_conditional(request)
    return wrapper


def _created(document: dict, status: int):
    location = url_for("data.RecordItem", record_id=str(document["_id"]))
    return record_answer(document), status, {"Location": location}


@blp.route("")
class Records(MethodView):
    """The collection of records."""

    @protected
    @blp.no_query
    @blp.arguments(RecordInSchema)
    @blp.arguments(IdempotencyHeaderSchema, location="headers", as_kwargs=True)
    @blp.response(201, RecordSchema, headers={"Location": {"schema": {"type": "string"}}})
    @blp.alt_response(200, schema=RecordSchema, description="A retry of an earlier Idempotency-Key.")
    @other_responses(*WRITE_ERRORS)
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
    @other_responses(503)
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
        page = fit_page(repository().page(query), query.limit, current_app.config["PAGE_MAX_BYTES"])
        return page.answer(next_cursor=cursor.encode(page.last_id, query.scope(), key) if page.more else None)


@blp.route("/<record_id>")
class RecordItem(MethodView):
    """One record."""

    @protected
    @cacheable
    @blp.no_query
    @blp.response(200, RecordSchema, **CACHEABLE)
    @blp.alt_response(304, description="If-None-Match holds the current ETag: no body.")
    @other_responses(404, 503)
    def get(self, record_id):
        """Read one record by id"""
        document = repository().get(record_id)
        if document is None:
            abort(404, message="No record has this id.")
        return record_answer(document)


@blp.route("/batch")
class RecordBatch(MethodView):
    """Many records in one request."""

    @protected
    @blp.no_query
    @blp.arguments(BatchInSchema)
    @blp.arguments(IdempotencyHeaderSchema, location="headers", as_kwargs=True)
    @blp.response(201, BatchOutSchema)
    @blp.alt_response(200, schema=BatchOutSchema, description="A retry of an earlier Idempotency-Key.")
    @other_responses(*WRITE_ERRORS)
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


@blp.route("/feed")
class RecordFeed(MethodView):
    """Every record once, oldest first."""

    @protected
    @blp.arguments(FeedQuerySchema, location="query", unknown="raise")
    @blp.response(200, FeedPageSchema)
    @other_responses(503)
    def get(self, args):
        """Follow every record exactly once, oldest first

        Start with no position (the oldest record), `since`, or `after` (the `next`
        of an earlier page, always present, also after an empty page: store it and
        poll again). Records appear once their id is older than FEED_SETTLE_SECONDS,
        when no record with an older id can appear any more: a consumer that follows
        `next` sees every record once, in ascending id order.
        """
        key, source = current_app.config["CURSOR_KEY"], args.get("source")
        try:
            start = feed.start_of(args, key)
        except feed.InvalidCheckpoint as exc:
            abort(422, errors={"query": {"after": [str(exc)]}}, message="Invalid checkpoint.")
        store = repository()
        horizon = feed.horizon(current_app.config["SETTINGS"].feed_settle_seconds, store.clock())
        documents = store.feed(start, horizon, args["limit"], source)
        page = fit_page(documents, args["limit"], current_app.config["PAGE_MAX_BYTES"])
        return page.answer(next=feed.checkpoint(feed.resume_after(page.last_id, start), source, key))
