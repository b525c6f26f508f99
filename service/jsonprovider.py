"""orjson for responses: several times faster than the standard library on record pages."""
from __future__ import annotations

import orjson
from flask.json.provider import DefaultJSONProvider


class OrjsonProvider(DefaultJSONProvider):
    """Dump with orjson; loading stays with the standard library (integers of any size)."""

    def dumps(self, obj, **kwargs) -> str:
        return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode("utf-8")

    def response(self, *args, **kwargs):
        obj = self._prepare_response_obj(args, kwargs)
        return self._app.response_class(
            orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS), mimetype=self.mimetype
        )
