"""The data-ingest service: `create_app` (service/app.py) is the only way an app is built."""
from .app import create_app

__all__ = ["create_app"]
