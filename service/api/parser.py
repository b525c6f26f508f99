"""Request body parsing stricter than webargs' default."""
from __future__ import annotations

import json
import typing

import flask
from flask_smorest import Blueprint, abort
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


def parse_strict_json(body: bytes):
    """Parse standard JSON only: no NaN/Infinity, valid UTF-8, no lone surrogates."""
    try:
        document = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
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
    """Bodies must be declared as JSON (else 415) and be standard JSON (else 400)."""

    def _raw_load_json(self, req: flask.Request) -> typing.Any:
        if not req.mimetype or not core.is_json(req.mimetype):
            abort(415, message="Send the body as application/json.")
        return parse_strict_json(req.get_data(cache=True))


class StrictBlueprint(Blueprint):
    """A flask-smorest Blueprint that parses request bodies with StrictParser."""

    ARGUMENTS_PARSER = StrictParser()
