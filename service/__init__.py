"""The data-ingest service: `create_app` (service/app.py) is the only way an app is built.

This module imports nothing at load time on purpose: gunicorn.conf.py reads
`service.config` in the gunicorn master, and the gevent worker must monkey-patch the
standard library before pymongo, mongomock and the app's own modules are imported
(they then are, in each worker, after the patch).
"""
from __future__ import annotations


def create_app(environ=None):
    """Build the app from `environ`, all of it (tests), or else from the process environment."""
    from .app import create_app as build
    return build(environ)
