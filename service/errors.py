"""One place that turns every failure into a JSON error of the same shape."""
from __future__ import annotations

import logging
import traceback

import flask_smorest
from flask import Flask, g
from flask_smorest import abort
from marshmallow import Schema, fields
from pymongo.errors import (
    BulkWriteError, ConnectionFailure, DuplicateKeyError, PyMongoError, WriteConcernError,
)
from werkzeug.exceptions import HTTPException, InternalServerError, MethodNotAllowed

from .repository import (
    TRANSIENT_CODES, IdempotencyConflict, MissingIndex, Refused, RetryLater,
)

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = "1"
UNAVAILABLE_MESSAGE = "The database is unavailable; retry later."


class ErrorSchema(Schema):
    """The body of every error response."""

    code = fields.Integer(metadata={"description": "HTTP status code"})
    status = fields.String(metadata={"description": "HTTP status name"})
    message = fields.String(metadata={"description": "what went wrong"})
    errors = fields.Dict(
        keys=fields.String(),
        metadata={"description": "per location (json, query, headers) and field path"},
    )
    request_id = fields.String(metadata={"description": "the X-Request-ID of the request"})


class Api(flask_smorest.Api):
    """flask-smorest's Api, adding the request id, and `Allow` on 405 (its handler drops it)."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: HTTPException):
        payload, code, headers = super().handle_http_exception(error)
        payload["request_id"] = g.get("request_id")
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            headers = {**headers, "Allow": ", ".join(sorted(error.valid_methods))}
        return payload, code, headers


def unavailable(error: PyMongoError) -> bool:
    """True for failures a retry can cure: no server, a dropped connection, a timeout
    (the request's budget, maxTimeMS, wtimeout), a primary stepping down, a write
    concern not satisfied, or any write error the repository lets through."""
    if isinstance(error, (ConnectionFailure, WriteConcernError)) or error.timeout:
        return True
    if getattr(error, "code", None) in TRANSIENT_CODES:
        return True
    # The repository turns refusals and foreign duplicates into outcomes of their own; any
    # other write error leaves what was written for the retry to complete.
    return isinstance(error, BulkWriteError)


def _database_error(error: PyMongoError):
    """The one mapping of driver errors, whichever route or query raised them."""
    if isinstance(error, DuplicateKeyError):
        abort(409, message="A record with this id already exists.")
    if unavailable(error):
        log.warning("database unavailable: %s", type(error).__name__, extra=_codes(error))
        _retry_later(UNAVAILABLE_MESSAGE)
    _unexpected(error)


def _retry_later(message: str):
    abort(503, message=message, headers={"Retry-After": RETRY_AFTER_SECONDS})


def _missing_index(error: MissingIndex):
    log.error("missing index: run init-db", extra={"error": type(error).__name__})
    _retry_later(str(error))


def _key_busy(error: RetryLater):
    _retry_later("An earlier attempt with this Idempotency-Key may still be writing; retry in a moment.")


def _refused(error: Refused):
    """A value within our rules that the server still will not store (an older or stricter
    MongoDB-compatible server may refuse a shape MongoDB accepts): the client's 422."""
    messages = {i: {"payload": [e.get("errmsg", "refused")]} for i, e in error.errors.items()}
    errors = {"records": {str(i): m for i, m in messages.items()}} if error.batch else messages[0]
    abort(422, message="The database cannot store this payload.", errors={"json": errors})


def _idempotency_conflict(error: IdempotencyConflict):
    abort(409, message="This Idempotency-Key was already used with a different body.")


def _codes(error: Exception) -> dict:
    """The server's error code and name, when there are some. A message only for a network
    failure, which names the server and the timeout, never a stored value."""
    codes = {"error": type(error).__name__}
    if isinstance(error, ConnectionFailure):
        codes["detail"] = str(error)
    if isinstance(error, BulkWriteError):
        codes.update(code=sorted({e.get("code") for e in error.details.get("writeErrors", [])}))
    elif isinstance(error, PyMongoError):
        details = getattr(error, "details", None) or {}
        codes.update(code=getattr(error, "code", None), code_name=details.get("codeName"))
    elif isinstance(error, Refused):
        codes.update(code=sorted({e.get("code") for e in error.errors.values()}))
    return codes


def _unexpected(error: Exception):
    # The type, the server's code and the stack, not the message: messages can quote stored values.
    stack = "".join(traceback.format_tb(error.__traceback__))
    log.error("unhandled exception", extra={**_codes(error), "stack": stack})
    raise InternalServerError() from None


def register(app: Flask, api: Api) -> None:
    """Route driver and domain exceptions to JSON errors."""
    for errors, handler in (
        ((PyMongoError,), _database_error),
        ((MissingIndex,), _missing_index),
        ((Refused,), _refused),
        ((IdempotencyConflict,), _idempotency_conflict),
        ((RetryLater,), _key_busy),
        ((Exception,), _unexpected),
    ):
        for error in errors:
            app.register_error_handler(error, _via(api, handler))


def _via(api: Api, handler):
    """Run `handler`, which aborts, and render the resulting HTTPException."""
    def render(error):
        try:
            handler(error)
        except HTTPException as http_error:
            return api.handle_http_exception(http_error)
    return render
