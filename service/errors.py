"""One place that turns every failure into a JSON error of the same shape."""
from __future__ import annotations

import logging
import traceback

import flask_smorest
from flask import Flask, g
from flask_smorest import abort
from marshmallow import Schema, fields
from pymongo.errors import (
    BulkWriteError, ConnectionFailure, DuplicateKeyError, ExecutionTimeout, WriteError, WTimeoutError,
)
from werkzeug.exceptions import HTTPException, InternalServerError, MethodNotAllowed

from .repository import IdempotencyConflict

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = "1"
# ConnectionFailure covers AutoReconnect, NetworkTimeout and ServerSelectionTimeoutError.
UNAVAILABLE = (ConnectionFailure, ExecutionTimeout, WTimeoutError)


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


def _unavailable(error: Exception):
    log.warning("database unavailable: %s: %s", type(error).__name__, error)
    abort(503, message="The database is unavailable; retry later.",
          headers={"Retry-After": RETRY_AFTER_SECONDS})


def _duplicate(error: DuplicateKeyError):
    abort(409, message="A record with this id already exists.")


# BadValue: a value within our rules that the server still will not store (an older or
# stricter MongoDB-compatible server may refuse a shape MongoDB accepts): the client's 422.
BAD_VALUE = 2


def _refused(error: WriteError | BulkWriteError):
    if isinstance(error, BulkWriteError):
        refused = {str(e["index"]): {"payload": [e.get("errmsg", "refused")]}
                   for e in error.details.get("writeErrors", []) if e.get("code") == BAD_VALUE}
        errors = {"json": {"records": refused}}
    else:
        refused = {"payload": [error.details.get("errmsg", "refused")]} if error.code == BAD_VALUE else {}
        errors = {"json": refused}
    if not refused:
        _unexpected(error)
    abort(422, message="The database cannot store this payload.", errors=errors)


def _idempotency_conflict(error: IdempotencyConflict):
    abort(409, message="This Idempotency-Key was already used with a different body.")


def _unexpected(error: Exception):
    # The type and the stack, not the message: messages can quote stored values.
    stack = "".join(traceback.format_tb(error.__traceback__))
    log.error("unhandled exception", extra={"error": type(error).__name__, "stack": stack})
    raise InternalServerError() from None


def register(app: Flask, api: Api) -> None:
    """Route driver and domain exceptions to JSON errors."""
    for errors, handler in (
        (UNAVAILABLE, _unavailable),
        ((DuplicateKeyError,), _duplicate),
        ((WriteError, BulkWriteError), _refused),
        ((IdempotencyConflict,), _idempotency_conflict),
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
