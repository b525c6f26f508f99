"""Response headers for a JSON API: no sniffing, no caching of data, a strict CSP, CORS opt-in."""
from __future__ import annotations

from flask import Flask, request
from flask_cors import CORS

# Swagger UI needs its own scripts and styles (and inline style attributes); nothing else.
DOCS_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'")
API_POLICY = "default-src 'none'; frame-ancestors 'none'"
EXPOSED = ["ETag", "Location", "Retry-After", "X-Request-ID"]
ACCEPTED = ["Authorization", "Content-Type", "Idempotency-Key", "If-None-Match", "X-Request-ID"]


def _secure(response):
    is_docs = request.path.startswith("/docs")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Content-Security-Policy"] = DOCS_POLICY if is_docs else API_POLICY
    if not is_docs:
        # Views that may be cached say so (GET /data/<id>); everything else never is.
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def init_app(app: Flask, cors_origins: tuple[str, ...]) -> None:
    """Add the headers to every response; allow cross-origin calls only from listed origins."""
    app.after_request(_secure)
    if cors_origins:
        CORS(app, resources={r"/data*": {"origins": list(cors_origins)}},
             expose_headers=EXPOSED, allow_headers=ACCEPTED, max_age=600)
