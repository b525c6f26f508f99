"""Opaque page cursors and feed checkpoints: an id, signed and bound to the query that made it.

A token is `<key id>.<the id, base64url>.<signature>`, signed by itsdangerous (HMAC) with
the query's filters as salt, so a changed character, or a token of another query or
another deployment, fails. CURSOR_SECRET lists secrets separated by commas: the first
signs, every one verifies, so a secret can be rotated without invalidating the
checkpoints consumers keep (docs/operations.md). The key id, a digest of the secret,
picks the one secret to verify with.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from bson import ObjectId
from itsdangerous import BadSignature, Signer

_SHAPE = re.compile(r"[0-9a-f]{8}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{27}")
# Tokens of the earlier format (a version byte, the id, an 11-byte BLAKE2b digest, 32
# characters) still verify, so checkpoints kept from before stay valid.
_LEGACY_SHAPE = re.compile(r"[A-Za-z0-9_-]{32}")


class InvalidCursor(ValueError):
    """The cursor was not made by this service for this query."""


@dataclass(frozen=True)
class Keys:
    """The secrets by key id, and the id of the one that signs."""

    signing: str
    secrets: dict[str, str]


def _key_id(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:8]


def make_keys(setting: str) -> Keys:
    """The keys of CURSOR_SECRET (the first signs); none (memory://) gets a random one.

    The in-memory store runs in one process, so a key of that process is enough; every
    other configuration must share CURSOR_SECRET (config.py refuses to start without).
    """
    listed = [s.strip() for s in setting.split(",") if s.strip()] or [secrets.token_hex(32)]
    return Keys(_key_id(listed[0]), {_key_id(s): s for s in listed})


def _signer(secret: str, scope: str) -> Signer:
    return Signer(secret, salt="cursor:" + scope)


def encode(last_id: ObjectId, scope: str, keys: Keys) -> str:
    """Make the token that continues a query after `last_id`."""
    body = base64.urlsafe_b64encode(last_id.binary).decode("ascii")
    return _signer(keys.secrets[keys.signing], scope).sign(f"{keys.signing}.{body}").decode("ascii")


def decode(token: str, scope: str, keys: Keys) -> ObjectId:
    """Return the id a token continues after, or raise InvalidCursor."""
    if _LEGACY_SHAPE.fullmatch(token):
        return _decode_legacy(token, scope, keys)
    if not _SHAPE.fullmatch(token):
        raise InvalidCursor("malformed cursor")
    key_id, body, _ = token.split(".")
    signer = _signer(keys.secrets.get(key_id, ""), scope)
    try:
        value = signer.unsign(token)
    except BadSignature:
        raise InvalidCursor("cursor does not belong to this query") from None
    # The signature's last character has spare bits: only the canonical spelling is accepted.
    if key_id not in keys.secrets or signer.sign(value).decode("ascii") != token:
        raise InvalidCursor("cursor does not belong to this query")
    return ObjectId(base64.urlsafe_b64decode(body))


def _decode_legacy(token: str, scope: str, keys: Keys) -> ObjectId:
    raw = base64.urlsafe_b64decode(token)  # 32 characters of the alphabet always decode
    body, digest = raw[:13], raw[13:]
    for secret in keys.secrets.values():
        mac = hashlib.blake2b(body, digest_size=11, key=hashlib.sha256(secret.encode("utf-8")).digest())
        mac.update(scope.encode("utf-8"))
        if body[:1] == b"\x01" and hmac.compare_digest(digest, mac.digest()):
            return ObjectId(body[1:])
    raise InvalidCursor("cursor does not belong to this query")
