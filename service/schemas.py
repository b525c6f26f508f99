"""Marshmallow schemas: what the API accepts and what it returns.

Every schema is its own named class so that the OpenAPI document names them.
"""
from __future__ import annotations

import math
import re
from datetime import datetime, timezone

import orjson
from flask import current_app
from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate, validates_schema

SOURCE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# RFC 3339 section 5.6 date-time: full date, time, fraction, and a mandatory offset.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
)


class RFC3339DateTime(fields.DateTime):
    """An RFC 3339 date-time with an offset in, UTC with `Z` and milliseconds out."""

    default_error_messages = {
        "invalid": "Not an RFC 3339 date-time with offset (e.g. 2024-05-01T12:00:00Z).",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not _RFC3339.fullmatch(value):
            raise self.make_error("invalid")
        try:
            parsed = datetime.fromisoformat(value.upper())
        except ValueError:
            raise self.make_error("invalid") from None
        try:
            parsed = parsed.astimezone(timezone.utc)
        except OverflowError:  # 0001-01-01T00:30:00+01:00 is before year 1 in UTC
            raise self.make_error("invalid") from None
        # MongoDB stores milliseconds: truncate here so the answer equals what is stored.
        return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else rfc3339(value)


def rfc3339(value: datetime) -> str:
    """How every date leaves the API: UTC, milliseconds, `Z`."""
    value = value.astimezone(timezone.utc)  # the client is tz_aware: never naive
    # Not strftime("%Y"): it does not pad years before 1000 to four digits.
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _path_error(path: list, message: str) -> ValidationError:
    """A ValidationError nested along `path`, its message naming the dotted path."""
    error: dict | list = [f"{'.'.join(map(str, ['payload', *path]))}: {message}"]
    for key in reversed(path):
        error = {key: error}
    return ValidationError(error)


def _check_key(key: str, path: list) -> None:
    if key.startswith("$"):
        raise _path_error(path, "keys must not start with '$'")
    if "\x00" in key:
        raise _path_error(path, "keys must not contain a NUL character")


def _check_scalar(value, path: list) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        raise _path_error(path, "integers must fit in a signed 64-bit integer")
    if isinstance(value, float) and not math.isfinite(value):
        raise _path_error(path, "numbers must be finite")


def _check_value(value, path: list, depth: int, max_depth: int) -> None:
    """Refuse what BSON cannot store faithfully, walking containers depth-first."""
    if not isinstance(value, (dict, list)):
        _check_scalar(value, path)
        return
    if depth > max_depth:
        raise _path_error(path, f"nesting deeper than {max_depth} levels")
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if isinstance(value, dict):
            _check_key(key, [*path, key])
        _check_value(item, [*path, key], depth + 1, max_depth)


def check_payload(payload: dict) -> None:
    """Check a payload against the configured depth and size limits and BSON's rules.

    Errors nest along the offending path (errors.json.payload.a.b) and their message
    names it, so a client can find the field either way.
    """
    config = current_app.config
    _check_value(payload, [], 1, config["PAYLOAD_MAX_DEPTH"])
    size = len(orjson.dumps(payload))
    if size > config["PAYLOAD_MAX_BYTES"]:
        raise ValidationError(
            [f"payload: {size} bytes as compact JSON, more than {config['PAYLOAD_MAX_BYTES']}"]
        )


def validate_batch_size(records: list) -> None:
    """Check a batch against the configured record count."""
    most = current_app.config["BATCH_MAX_RECORDS"]
    if not 1 <= len(records) <= most:
        raise ValidationError(f"Between 1 and {most} records.")


# A 422 for a batch lists this many failing records; the message says how many failed.
BATCH_ERRORS_LISTED = 10


class SummarizedError(ValidationError):
    """A ValidationError whose messages are a sample; `summary` says what was left out."""

    def __init__(self, messages: dict, summary: str):
        super().__init__(messages)
        self.summary = summary


class DigitsInteger(fields.Integer):
    """A non-negative integer written in ASCII digits only (no sign, `_`, or other scripts)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not (value.isascii() and value.isdigit()):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


def single_line(value: str) -> None:
    """Refuse a trailing newline, which a `$` anchor would let through."""
    if "\n" in value:
        raise ValidationError("Must be a single line.")


def source_field(**kwargs) -> fields.String:
    """The producer of a record: the first key of the index and the shard key."""
    return fields.String(
        validate=[validate.Length(1, 128), validate.Regexp(SOURCE_PATTERN), single_line],
        metadata={"description": "producer of the record", "example": "billing-service"},
        **kwargs,
    )


class RecordInSchema(Schema):
    """A record as sent by a producer."""

    class Meta:
        unknown = RAISE

    source = source_field(required=True)
    payload = fields.Dict(
        keys=fields.String(), required=True,
        metadata={"description": "any JSON object within the size and depth limits",
                  "example": {"amount": 42, "currency": "EUR"}},
    )
    timestamp = RFC3339DateTime(
        load_default=None, allow_none=False,
        metadata={"description": "event time; defaults to the time of receipt"},
    )
    tags = fields.List(
        fields.String(validate=validate.Length(1, 64)),
        load_default=list, validate=validate.Length(max=32),
        metadata={"example": ["invoice"]},
    )

    @validates_schema
    def _payload_storable(self, data, **kwargs):
        try:
            check_payload(data["payload"])
        except ValidationError as error:
            raise ValidationError(error.messages, "payload") from None


class RecordSchema(Schema):
    """A stored record."""

    id = fields.String(attribute="_id", metadata={"example": "665f1c2ab1e4c3a9d0f1e2d3"})
    source = fields.String()
    payload = fields.Dict(keys=fields.String())
    tags = fields.List(fields.String())
    timestamp = RFC3339DateTime()
    created_at = RFC3339DateTime(metadata={"description": "time the id was made (1 s resolution)"})


def record_json(document: dict) -> bytes:
    """A stored record as RecordSchema dumps it, byte for byte, encoded in one step.

    Every answer that carries records encodes them here: a page of 1,000 records through
    the schema built and walked 1,000 intermediate objects, the largest part of a page's
    own cost (docs/performance.md, "The service tax"). RecordSchema stays the contract
    in the OpenAPI document; a unit test holds the two to the same bytes.
    """
    return orjson.dumps({"id": str(document["_id"]), "source": document["source"],
                         "payload": document["payload"], "tags": document["tags"],
                         "timestamp": rfc3339(document["timestamp"]),
                         "created_at": rfc3339(document["created_at"])})


class RecordPageSchema(Schema):
    """One page of records, newest first."""

    items = fields.List(fields.Nested(RecordSchema))
    next_cursor = fields.String(
        allow_none=True,
        metadata={"description": "pass as `cursor` for the next page; null on the last page"},
    )


class RecordQuerySchema(Schema):
    """Filters and position of a page."""

    class Meta:
        unknown = RAISE

    limit = DigitsInteger(load_default=100, validate=validate.Range(1, 1000))
    cursor = fields.String(metadata={"description": "next_cursor of the previous page"})
    source = source_field()
    since = RFC3339DateTime(metadata={"description": "created_at on or after (inclusive)"})
    until = RFC3339DateTime(metadata={"description": "created_at on or before (inclusive)"})

    @validates_schema
    def _ordered(self, data, **kwargs):
        if "since" in data and "until" in data and data["since"] > data["until"]:
            raise ValidationError("must not be before since", "until")


class FeedQuerySchema(Schema):
    """Where the feed starts, and how much of it one page holds."""

    class Meta:
        unknown = RAISE

    limit = DigitsInteger(load_default=100, validate=validate.Range(1, 1000))
    source = source_field()
    after = fields.String(metadata={"description": "`next` of an earlier page (same `source`)"})
    since = RFC3339DateTime(metadata={"description": "start at the first record created at or after this"})

    @validates_schema
    def _one_start(self, data, **kwargs):
        if "after" in data and "since" in data:
            message = ["Give either after or since, not both."]
            raise ValidationError({"after": message, "since": message})


class FeedPageSchema(Schema):
    """One page of the feed, oldest first, and the checkpoint after it."""

    items = fields.List(fields.Nested(RecordSchema))
    next = fields.String(
        required=True,
        metadata={"description": "pass as `after` to continue; always present, also after an empty page"},
    )


class IdempotencyHeaderSchema(Schema):
    """The optional key that makes a POST safe to retry."""

    idempotency_key = fields.String(
        data_key="Idempotency-Key",
        validate=[validate.Regexp(r"^[\x20-\x7e]{1,128}$", error="1 to 128 printable ASCII characters."),
                  single_line],
        metadata={"description": "retries with the same key and body return the first record"},
    )


class BatchInSchema(Schema):
    """Records stored together, all or nothing."""

    class Meta:
        unknown = RAISE

    records = fields.List(fields.Nested(RecordInSchema), required=True, validate=validate_batch_size)

    @pre_load
    def _cap_first(self, data, **kwargs):
        """Refuse too many records before validating any of them: the cap must stay cheap."""
        if isinstance(data, dict) and isinstance(data.get("records"), list):
            try:
                validate_batch_size(data["records"])
            except ValidationError as error:
                raise ValidationError(error.messages, "records") from None
        return data

    def handle_error(self, error: ValidationError, data, **kwargs):
        """List the first BATCH_ERRORS_LISTED failing records, and say how many failed."""
        failing = error.messages.get("records") if isinstance(error.messages, dict) else None
        if not isinstance(failing, dict) or len(failing) <= BATCH_ERRORS_LISTED:
            return
        listed = dict(sorted(failing.items())[:BATCH_ERRORS_LISTED])
        raise SummarizedError(
            {**error.messages, "records": listed},
            f"{len(failing)} of {len(data['records'])} records are invalid; "
            f"errors lists the first {BATCH_ERRORS_LISTED}.",
        ) from None


class BatchOutSchema(Schema):
    """Ids of the records a batch stored, in the order sent."""

    ids = fields.List(fields.String())
