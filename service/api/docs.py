"""Swagger UI assets served from the installed swagger-ui-bundle: no CDN needed."""
from __future__ import annotations

from flask import Blueprint, send_from_directory
from swagger_ui_bundle import swagger_ui_path

blp = Blueprint("docs_assets", __name__, url_prefix="/docs/assets", static_folder=None)
ASSETS_URL = "/docs/assets/"


@blp.get("/<path:filename>")
def asset(filename: str):
    """One file of the Swagger UI distribution (or the page's own start-up script)."""
    return send_from_directory(swagger_ui_path, filename, max_age=86400)
