"""Refusals the HTTP server decides before a view runs, answered by the app.

The gunicorn worker (service/worker.py) reads each request's head and body itself and
refuses some requests on its own: a body too large (413) or badly framed (400), a
header block too large (431), a request line too long (414), a
transfer coding it does not support (501). It hands each refusal to the app as the
request's body, a `RefusedBody`, so that the answer has the same JSON shape, request id,
security headers, log line and metrics as every other response. A client cannot forge
one: it is an object in the WSGI environ, never something parsed from the request.
"""
from __future__ import annotations

import io

from flask import Flask, request
from flask_smorest import abort


class RefusedBody(io.BytesIO):
    """An empty request body standing for the server's refusal of the request."""

    def __init__(self, status: int, message: str):
        super().__init__(b"")
        self.status = status
        self.message = message


def _answer_refusal() -> None:
    body = request.environ.get("wsgi.input")
    if isinstance(body, RefusedBody):
        abort(body.status, message=body.message)


def init_app(app: Flask) -> None:
    """Answer refused requests before anything else looks at them (auth included)."""
    app.before_request(_answer_refusal)
