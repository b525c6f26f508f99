"""The floor under every read of `make bench-tax`: a WSGI app that answers at once, served
by gunicorn with the project's gunicorn.conf.py (the same worker model, threads and
keep-alive as the service). What a read through the API costs beyond the driver and
beyond this is the service's own: Flask, its hooks, the view.
"""
from __future__ import annotations

BODY = b'{"status":"ok"}'


def app(environ, start_response):
    """Answer any request with a small JSON body, reading nothing."""
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))])
    return [BODY]
