"""API keys: `Authorization: Bearer <key>`, stored as SHA-256 hashes, scopes read/write.

The key file (a mounted Kubernetes Secret) has one key per line:
    <name> <sha256 hex of the key> <scopes, comma-separated>
e.g. `billing 9f86d08...0a08 read,write`. Lines starting with # are comments.
`flask --app service new-api-key NAME` makes a key and prints its line. The file is
re-read when it changes, so a rotated Secret takes effect without a restart.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
from dataclasses import dataclass

import click
from flask import Flask, current_app, request
from flask_httpauth import HTTPTokenAuth
from flask_smorest import abort

from .config import ConfigError

log = logging.getLogger(__name__)
EXTENSION = "api_keys"
SCOPES = frozenset({"read", "write"})
_LINE = re.compile(r"(?P<name>[\w.-]{1,64})\s+(?P<digest>[0-9a-f]{64})\s+(?P<scopes>[a-z,]+)")
SCHEME_NAME = "bearerAuth"
SCHEME = {"type": "http", "scheme": "bearer", "description": "An API key from API_KEYS_FILE."}


@dataclass(frozen=True)
class ApiKey:
    """One configured key: who it is, its hash, what it may do."""

    name: str
    digest: bytes
    scopes: frozenset[str]


def digest(key: str) -> bytes:
    """The stored form of a key (keys are random 256-bit tokens: a fast hash is enough)."""
    return hashlib.sha256(key.encode("utf-8")).digest()


def parse_keys(text: str, source: str = "API_KEYS_FILE") -> list[ApiKey]:
    """Parse the key file; any malformed line is a configuration error naming its number."""
    keys = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.fullmatch(line)
        scopes = frozenset(match["scopes"].split(",")) if match else frozenset()
        if not match or not scopes <= SCOPES:
            raise ConfigError(source, f"line {number}: expected '<name> <sha256 hex> <read,write>'")
        keys.append(ApiKey(match["name"], bytes.fromhex(match["digest"]), scopes))
    return keys


class KeyStore:
    """The configured keys, re-read when the file's modification time changes."""

    def __init__(self, path: str | None):
        self.path = path
        self._stamp: int | None = None
        self._keys: list[ApiKey] = []
        if path:
            self._stamp, self._keys = self._read()  # fail at start-up, not on a request

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def _read(self) -> tuple[int, list[ApiKey]]:
        try:
            stamp = os.stat(self.path).st_mtime_ns
            with open(self.path, encoding="utf-8") as handle:
                return stamp, parse_keys(handle.read())
        except OSError as exc:
            raise ConfigError("API_KEYS_FILE", f"cannot be read: {exc.strerror}") from None

    def keys(self) -> list[ApiKey]:
        """The current keys; a file that turns unreadable or invalid keeps the last good ones."""
        try:
            if os.stat(self.path).st_mtime_ns != self._stamp:
                self._stamp, self._keys = self._read()
        except (OSError, ConfigError) as exc:
            log.error("API keys not reloaded, keeping the previous ones: %s", exc)
        return self._keys

    def find(self, presented: str) -> ApiKey | None:
        """The key matching `presented`; every hash is compared, in constant time each."""
        wanted, found = digest(presented), None
        for key in self.keys():
            if hmac.compare_digest(key.digest, wanted):
                found = key
        return found


token_auth = HTTPTokenAuth(scheme="Bearer", realm="data-ingest")


@token_auth.verify_token
def _verify(token: str) -> ApiKey | None:
    return current_app.extensions[EXTENSION].find(token.strip())


@token_auth.get_user_roles
def _scopes(key: ApiKey) -> list[str]:
    return sorted(key.scopes)  # a list: Flask-HTTPAuth reads any other type as one role


@token_auth.error_handler
def _refuse(status: int):
    """The JSON error of a missing or unknown key (401) or a missing scope (403)."""
    if status == 403:
        abort(403, message=f"This API key lacks the '{_scope_needed()}' scope.",
              headers=_challenge("insufficient_scope"))
    if not getattr(token_auth.get_auth(), "token", None):
        abort(401, message="Send an API key as 'Authorization: Bearer <key>'.", headers=_challenge())
    abort(401, message="Unknown API key.", headers=_challenge("invalid_token"))


def _challenge(error: str | None = None) -> dict:
    value = token_auth.authenticate_header() + (f', error="{error}"' if error else "")
    return {"WWW-Authenticate": value}


def _scope_needed() -> str:
    return "read" if request.method in ("GET", "HEAD") else "write"


# One guard per scope; HTTPTokenAuth lets OPTIONS (CORS preflights) through without a key.
_GUARDS = {scope: token_auth.login_required(role=scope)(lambda: None) for scope in SCOPES}


def require_key():
    """Before every /data request: a valid key with the scope the method needs."""
    if current_app.extensions[EXTENSION].enabled:
        return _GUARDS[_scope_needed()]()
    return None


@click.command("new-api-key")
@click.argument("name")
@click.option("--scopes", default="read,write", show_default=True, help="comma-separated")
def new_api_key(name: str, scopes: str) -> None:
    """Make a random key; print it once, and the line for API_KEYS_FILE."""
    key = secrets.token_urlsafe(32)
    line = f"{name} {digest(key).hex()} {scopes}"
    parse_keys(line, "the new key")
    click.echo(f"key (give it to the client, it is not stored): {key}")
    click.echo(f"line for API_KEYS_FILE: {line}")


def init_app(app: Flask, path: str | None) -> None:
    """Load the keys; without any, warn that /data is open to every caller."""
    app.extensions[EXTENSION] = KeyStore(path)
    if not path:
        log.warning("API_KEYS_FILE is not set: /data accepts requests without authentication")
    app.cli.add_command(new_api_key)
