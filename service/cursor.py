"""Opaque page cursors: the last id of a page, bound to the query that produced it.

A cursor is 24 bytes, base64url without padding (32 characters, so no spare bits:
every character change changes the bytes): a version byte, the 12-byte ObjectId,
and an 11-byte keyed BLAKE2b digest over both and the query's filters. A changed
character, or a cursor from another query or another deployment, fails the digest.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from bson import ObjectId

VERSION = b"\x01"
DIGEST_SIZE = 11
_SHAPE = re.compile(r"[A-Za-z0-9_-]{32}")


class InvalidCursor(ValueError):
    """The cursor was not made by this service for this query."""


def make_key(secret: str) -> bytes:
    """Turn the configured secret into a BLAKE2b key; no secret (memory://) gets a random one.

    The in-memory store runs in one process, so a key of that process is enough; every
    other configuration must share one CURSOR_SECRET (config.py refuses to start without).
    """
    if not secret:
        return secrets.token_bytes(32)
    return hashlib.sha256(secret.encode("utf-8")).digest()


def _digest(key: bytes, body: bytes, scope: str) -> bytes:
    mac = hashlib.blake2b(body, digest_size=DIGEST_SIZE, key=key)
    mac.update(scope.encode("utf-8"))
    return mac.digest()


def encode(last_id: ObjectId, scope: str, key: bytes) -> str:
    """Make the cursor that continues a query after `last_id`."""
    body = VERSION + last_id.binary
    return base64.urlsafe_b64encode(body + _digest(key, body, scope)).decode("ascii")


def decode(cursor: str, scope: str, key: bytes) -> ObjectId:
    """Return the id a cursor continues after, or raise InvalidCursor."""
    if not _SHAPE.fullmatch(cursor):
        raise InvalidCursor("malformed cursor")
    raw = base64.urlsafe_b64decode(cursor)  # 32 characters of the alphabet always decode
    body, digest = raw[:13], raw[13:]
    if body[:1] != VERSION or not hmac.compare_digest(digest, _digest(key, body, scope)):
        raise InvalidCursor("cursor does not belong to this query")
    return ObjectId(body[1:])
