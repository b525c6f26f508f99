"""The app factory: `create_app` is the only way an app is built."""
from __future__ import annotations

import os
from collections.abc import Mapping

from flask import Flask

from . import auth, cli, cursor, db, errors, headers, logs, metrics
from .api import data, docs, health
from .config import Settings
from .jsonprovider import OrjsonProvider
from .version import VERSION


def create_app(environ: Mapping[str, str] | None = None) -> Flask:
    """Build the app from `environ`, all of it (tests), or else from the process environment."""
    settings = Settings.from_env(os.environ if environ is None else environ)
    app = Flask(__name__, static_url_path="/docs/static")
    app.json = OrjsonProvider(app)
    configure(app, settings)
    register_extensions(app, settings)
    api = register_blueprints(app)
    errors.register(app, api)
    cli.init_app(app)
    return app


def configure(app: Flask, settings: Settings) -> None:
    """Copy the settings into Flask's and flask-smorest's configuration."""
    app.config.update(
        SETTINGS=settings,
        MAX_CONTENT_LENGTH=settings.max_content_length,
        PAYLOAD_MAX_BYTES=settings.payload_max_bytes,
        PAYLOAD_MAX_DEPTH=settings.payload_max_depth,
        BATCH_MAX_RECORDS=settings.batch_max_records,
        PAGE_MAX_BYTES=settings.page_max_bytes,
        CURSOR_KEY=cursor.make_keys(settings.cursor_secret),
        API_TITLE="data-ingest",
        API_VERSION=VERSION,
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL=docs.ASSETS_URL,
    )


def register_extensions(app: Flask, settings: Settings) -> None:
    """Logging and request ids first, so every later hook and log line has the id."""
    logs.init_app(app, settings.log_level)
    app_metrics = metrics.init_app(app)
    headers.init_app(app, settings.cors_origins)
    auth.init_app(app, settings.api_keys_file)
    db.init_app(app, settings, listeners=[metrics.CommandMetrics(app_metrics)])


def register_blueprints(app: Flask) -> errors.Api:
    """Create the Api (one per app) and mount every blueprint."""
    api = errors.Api()
    api.init_app(app)
    api.spec.components.security_scheme(auth.SCHEME_NAME, auth.SCHEME)
    for module in (data, health):
        api.register_blueprint(module.blp)
    app.register_blueprint(docs.blp)
    return api
