"""Swagger UI's files, served from the installed flask-swagger-ui package: no CDN needed."""
from __future__ import annotations

from pathlib import Path

import flask_swagger_ui
from flask import Blueprint, send_from_directory

# Only the package's copy of the Swagger UI 5 distribution is used, not its blueprint:
# the page itself is flask-smorest's, with the template in service/templates.
DIST = Path(flask_swagger_ui.__file__).parent / "dist"
ASSETS_URL = "/docs/assets/"
blp = Blueprint("docs_assets", __name__, url_prefix="/docs/assets", static_folder=None)


@blp.get("/<path:filename>")
def asset(filename: str):
    """One file of the Swagger UI distribution."""
    return send_from_directory(DIST, filename, max_age=86400)
