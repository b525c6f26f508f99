"""orjson for responses: several times faster than the standard library on record pages."""
from __future__ import annotations

from datetime import datetime

import orjson
from bson import ObjectId
from flask.json.provider import DefaultJSONProvider


def _default(value):
    if isinstance(value, ObjectId):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class OrjsonProvider(DefaultJSONProvider):
    """Dump with orjson; load with the standard library (arbitrary-size integers)."""

    def dumps(self, obj, **kwargs) -> str:
        return orjson.dumps(obj, default=_default, option=orjson.OPT_NON_STR_KEYS).decode("utf-8")

    def response(self, *args, **kwargs):
        obj = self._prepare_response_obj(args, kwargs)
        return self._app.response_class(
            orjson.dumps(obj, default=_default, option=orjson.OPT_NON_STR_KEYS),
            mimetype=self.mimetype,
        )


__all__ = ["OrjsonProvider", "datetime"]
