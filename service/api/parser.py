"""Request body parsing stricter than webargs' default."""
from __future__ import annotations

import functools
import json
import typing

import flask
from flask_smorest import Blueprint, abort
from flask_smorest.utils import resolve_schema_instance
from marshmallow import Schema
from webargs import core
from webargs.flaskparser import FlaskParser


def _refuse_constant(name: str) -> typing.NoReturn:
    raise ValueError(f"{name} is not JSON")


def _lone_surrogate(value) -> bool:
    """True if any string in the document holds a lone surrogate (not encodable UTF-8)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and not item.isascii():
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


class DuplicateKey(ValueError):
    """An object names the same key twice: which value was meant is ambiguous."""


def _unique_keys(pairs: list[tuple[str, typing.Any]]) -> dict:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise DuplicateKey(f"duplicate key {duplicate!r}")
    return document


def parse_strict_json(body: bytes):
    """Parse standard JSON only: no NaN/Infinity, no duplicate keys, valid UTF-8, no lone surrogates."""
    try:
        document = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant,
                              object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as exc:
        # JSONDecodeError and UnicodeDecodeError are ValueErrors; RecursionError is
        # how the decoder reports nesting deeper than the interpreter allows.
        abort(400, message=f"Invalid JSON body: {_reason(exc)}")
    if _lone_surrogate(document):
        abort(400, message="Invalid JSON body: a string holds a lone surrogate escape.")
    return document


def _reason(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply."
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8."
    return str(exc).split(":")[0] + "." if isinstance(exc, json.JSONDecodeError) else str(exc)


class StrictParser(FlaskParser):
    """Bodies must be declared as JSON (else 415) and be standard JSON (else 400); query
    parameters may appear once each (else 422)."""

    def _raw_load_json(self, req: flask.Request) -> typing.Any:
        if not req.mimetype or not core.is_json(req.mimetype):
            abort(415, message="Send the body as application/json.")
        return parse_strict_json(req.get_data(cache=True))

    def load_querystring(self, req: flask.Request, schema):
        repeated = sorted(name for name, values in req.args.lists() if len(values) > 1)
        if repeated:
            abort(422, message="Give each query parameter once.",
                  errors={"query": {name: ["Repeated parameter."] for name in repeated}})
        return super().load_querystring(req, schema)

    def handle_error(self, error, req, schema, *, error_status_code, error_headers):
        """webargs' 422, plus the summary of errors that were left out, when there is one."""
        summary = {"message": error.summary} if hasattr(error, "summary") else {}
        abort(error_status_code or self.DEFAULT_VALIDATION_STATUS, exc=error, messages=error.messages,
              schema=schema, headers=error_headers, **summary)


class NoQuerySchema(Schema):
    """Routes that take no query parameter: any one is a 422 naming it."""


class StrictBlueprint(Blueprint):
    """A flask-smorest Blueprint that parses with StrictParser."""

    ARGUMENTS_PARSER = StrictParser()

    def arguments(self, schema, **kwargs):
        """flask-smorest's, with a schema class made into an instance once: webargs would
        make one per request, and building a schema costs more than loading with it."""
        return super().arguments(resolve_schema_instance(schema), **kwargs)

    def no_query(self, view):
        """Refuse every query parameter on `view` (flask-smorest ignores unknown ones by default).

        webargs builds the 422 naming each parameter; a request without any, the usual
        case, skips it: a schema load per request would cost more than a small view.
        """
        strict = self.arguments(NoQuerySchema, location="query", unknown="raise", as_kwargs=True)(view)

        @functools.wraps(strict)
        def checked(*args, **kwargs):
            return strict(*args, **kwargs) if flask.request.args else view(*args, **kwargs)
        return checked
