"""Settings read from the environment, validated once at start-up."""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

MEMORY_URI = "memory://"


class ConfigError(SystemExit):
    """An invalid setting.

    A SystemExit so that any entry point (gunicorn, the flask CLI) stops with
    one clear line naming the variable instead of a traceback.
    """

    def __init__(self, name: str, problem: str):
        super().__init__(f"configuration error: {name} {problem}")
        self.name = name


def _integer(low: int, high: int):
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(name, f"must be an integer, got {raw!r}") from None
        if not low <= value <= high:
            raise ConfigError(name, f"must be between {low} and {high}, got {value}")
        return value
    return parse


def _text(name: str, raw: str) -> str:
    if not raw.strip():
        raise ConfigError(name, "must not be empty")
    return raw.strip()


def _write_concern(name: str, raw: str) -> str | int:
    """`majority`, a tag set name, or a number of members (0 is refused: unacknowledged)."""
    raw = _text(name, raw)
    if raw.isdigit():
        return _integer(1, 50)(name, raw)
    return raw


def _mongodb_uri(name: str, raw: str) -> str:
    raw = _text(name, raw)
    if raw != MEMORY_URI and not raw.startswith(("mongodb://", "mongodb+srv://")):
        raise ConfigError(name, "must start with mongodb://, mongodb+srv:// or be memory://")
    return raw


def _log_level(name: str, raw: str) -> str:
    level = raw.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError(name, f"must be DEBUG, INFO, WARNING or ERROR, got {raw!r}")
    return level


SECRET_MIN_LENGTH = 32
MAKE_KEY = "python3 -c 'import secrets; print(secrets.token_hex(32))'"


def _secrets(name: str, raw: str) -> str:
    """Empty (checked against MONGODB_URI later), or secrets separated by commas (the first
    signs, all verify), each long enough to resist guessing."""
    if raw and any(len(secret.strip()) < SECRET_MIN_LENGTH for secret in raw.split(",")):
        raise ConfigError(name, f"must list secrets of at least {SECRET_MIN_LENGTH} characters each, "
                                f"separated by commas, e.g. from {MAKE_KEY}")
    return raw


def _origins(name: str, raw: str) -> tuple[str, ...]:
    origins = tuple(o.strip() for o in raw.split(",") if o.strip())
    bad = [o for o in origins if o != "*" and not o.startswith(("http://", "https://"))]
    if bad:
        raise ConfigError(name, f"must list http(s) origins separated by commas, got {bad[0]!r}")
    return origins


def _optional_path(name: str, raw: str) -> str | None:
    return raw.strip() or None


def _optional_integer(low: int, high: int):
    """An integer within bounds, or None when the variable is empty (a derived default)."""
    parse = _integer(low, high)
    return lambda name, raw: parse(name, raw) if raw.strip() else None


# The feed serves only records whose id is older than FEED_SETTLE_SECONDS. A write makes
# its id inside its request and ends within MONGODB_REQUEST_TIMEOUT_MS of it, so the window
# must cover that budget, plus the clock skew between pods (ids follow each pod's clock) and
# the network and server slack of the last operation: at least SETTLE_SLACK_SECONDS more.
# The default adds CLOCK_SKEW_ALLOWANCE_SECONDS instead. docs/architecture.md, "Feed".
SETTLE_SLACK_SECONDS = 1
# Cross-setting rules (Settings._check_together): a key outlives abandon-after (two request
# budgets) plus the writes of a renewal (one more); the server's TTL monitor runs once a minute.
KEY_TTL_BUDGETS = 3
# The largest PAYLOAD_MAX_BYTES: its BSON stays below MongoDB's 16 MiB document limit for any
# payload. The worst case is an array of one-digit integers, 6 bytes of BSON per 2 of JSON
# (a 2 MiB one is 12.5 MB of BSON: tests/integration/test_bson.py stores it).
PAYLOAD_MAX_BYTES_CAP = 2 * 2**20
TTL_MONITOR_SECONDS = 60
CLOCK_SKEW_ALLOWANCE_SECONDS = 5


def setting(env: str, parse, default=None, doc: str = ""):
    """Declare a setting: its variable, parser, default (None = required) and meaning."""
    return field(metadata={"env": env, "parse": parse, "default": default, "doc": doc})


@dataclass(frozen=True)
class Settings:
    """Every setting of the service; the table in docs/configuration.md mirrors this."""

    mongodb_uri: str = setting("MONGODB_URI", _mongodb_uri, None,
                               "MongoDB connection string (required); memory:// for an in-process store")
    database: str = setting("MONGODB_DATABASE", _text, "ingest", "database name")
    collection: str = setting("MONGODB_COLLECTION", _text, "records", "collection of records")
    timeout_ms: int = setting("MONGODB_TIMEOUT_MS", _integer(100, 60_000), "2000",
                              "connect timeout; /readyz; server selection outside requests")
    socket_timeout_ms: int = setting("MONGODB_SOCKET_TIMEOUT_MS", _integer(100, 120_000), "5000",
                                     "socket read timeout of one operation outside requests (CLI)")
    request_timeout_ms: int = setting("MONGODB_REQUEST_TIMEOUT_MS", _integer(100, 120_000), "5000",
                                      "total database time of one request (pymongo timeout())")
    max_pool_size: int = setting("MONGODB_MAX_POOL_SIZE", _integer(1, 500), "20",
                                 "connections per worker process")
    write_concern: str | int = setting("MONGODB_WRITE_CONCERN", _write_concern, "majority",
                                       "write concern w (journaled)")
    max_content_length: int = setting("MAX_CONTENT_LENGTH", _integer(1024, 64 * 2**20), str(2**20),
                                      "largest request body in bytes (413 above)")
    payload_max_bytes: int = setting("PAYLOAD_MAX_BYTES", _integer(16, PAYLOAD_MAX_BYTES_CAP),
                                     str(64 * 2**10), "largest payload, as compact UTF-8 JSON")
    payload_max_depth: int = setting("PAYLOAD_MAX_DEPTH", _integer(1, 90), "32",
                                     "deepest payload nesting (the payload object is depth 1)")
    page_max_bytes: int = setting("PAGE_MAX_BYTES", _integer(2**16, 256 * 2**20), str(4 * 2**20),
                                  "a page of GET /data stops before it grows past this many bytes")
    batch_max_records: int = setting("BATCH_MAX_RECORDS", _integer(1, 10_000), "1000",
                                     "most records in one POST /data/batch")
    idempotency_ttl_seconds: int = setting("IDEMPOTENCY_TTL_SECONDS", _integer(60, 90 * 86400), "86400",
                                           "how long an Idempotency-Key is remembered")
    cursor_secret: str = setting("CURSOR_SECRET", _secrets, "",
                                 "secrets that sign cursors and checkpoints, comma-separated: the first "
                                 "signs, all verify; required unless memory://")
    api_keys_file: str | None = setting("API_KEYS_FILE", _optional_path, "",
                                        "file of hashed API keys; unset = no authentication")
    cors_origins: tuple[str, ...] = setting("CORS_ORIGINS", _origins, "",
                                            "origins allowed to call /data from a browser; empty = CORS off")
    bind: str = setting("BIND", _text, "127.0.0.1:8000", "gunicorn's address (the image sets 0.0.0.0:8000)")
    web_concurrency: int = setting("WEB_CONCURRENCY", _integer(1, 64), "2",
                                   "gunicorn worker processes (1 with memory://)")
    worker_connections: int = setting("GUNICORN_WORKER_CONNECTIONS", _integer(1, 10_000), "1000",
                                      "connections one worker process holds at once")
    worker_timeout: int = setting("GUNICORN_TIMEOUT", _integer(1, 600), "30",
                                  "seconds before a silent worker is restarted")
    graceful_timeout: int = setting("GUNICORN_GRACEFUL_TIMEOUT", _integer(1, 600), "25",
                                    "seconds in-flight requests get after SIGTERM")
    max_requests: int = setting("GUNICORN_MAX_REQUESTS", _integer(0, 10**7), "0",
                                "recycle a worker after this many requests (0 = never)")
    metrics_port: int = setting("METRICS_PORT", _integer(1, 65535), "9100",
                                "port of /metrics, served by the gunicorn master")
    log_level: str = setting("LOG_LEVEL", _log_level, "INFO", "DEBUG, INFO, WARNING or ERROR")
    feed_settle_seconds: int | None = setting(
        "FEED_SETTLE_SECONDS", _optional_integer(1, 86400), "",
        "age a record's id must reach before the feed serves it; empty = derived")
    retention_days: int | None = setting("RETENTION_DAYS", _optional_integer(1, 36500), "",
                                         "days a record is kept (TTL index by init-db); empty = forever")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Parse every setting from `environ` (default: the process environment)."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            meta = f.metadata
            raw = environ.get(meta["env"], meta["default"])
            if raw is None:
                raise ConfigError(meta["env"], "is required")
            values[f.name] = meta["parse"](meta["env"], str(raw))
        settings = cls(**values)
        settings = replace(settings, feed_settle_seconds=settings._settle_window())
        settings._check_together()
        return settings

    def _check_together(self) -> None:
        """The rules that span settings, checked at once; the first broken one stops start-up.

        Each names its settings and the rule (docs/operations.md, "Settings that must agree").
        """
        budget_s = self.request_timeout_ms / 1000
        if not self.cursor_secret and not self.in_memory:
            # Without it anyone could mint cursors offline; memory:// makes a random one.
            raise ConfigError("CURSOR_SECRET", f"is required unless MONGODB_URI is {MEMORY_URI} "
                                               f"(same value on every pod; make one with {MAKE_KEY})")
        if self.idempotency_ttl_seconds < KEY_TTL_BUDGETS * budget_s:
            # A retry renews a key's ids after two budgets (abandon-after) and writes within a third:
            # a key gone before that lets a concurrent retry store a second record.
            least = math.ceil(KEY_TTL_BUDGETS * budget_s)
            raise ConfigError("IDEMPOTENCY_TTL_SECONDS", f"must be at least {KEY_TTL_BUDGETS} x "
                              f"MONGODB_REQUEST_TIMEOUT_MS (abandon-after plus one write), "
                              f"{least} s, got {self.idempotency_ttl_seconds}")
        retention_s = self.retention_days and self.retention_days * 86400
        if retention_s and self.idempotency_ttl_seconds > retention_s - TTL_MONITOR_SECONDS:
            # A key that outlives its record would let a replay store the expired record again (201).
            raise ConfigError("IDEMPOTENCY_TTL_SECONDS", f"must be below RETENTION_DAYS by one TTL pass "
                              f"({TTL_MONITOR_SECONDS} s), at most {retention_s - TTL_MONITOR_SECONDS}, "
                              f"got {self.idempotency_ttl_seconds}")

    def _settle_window(self) -> int:
        """FEED_SETTLE_SECONDS as set, if the write path can honour it, else derived.

        With memory:// the writes run in this process and commit at once: any window
        of at least a second is enough (a second covers an id made just before a read).
        """
        budget = math.ceil(self.request_timeout_ms / 1000)
        if self.feed_settle_seconds is None:
            return budget + CLOCK_SKEW_ALLOWANCE_SECONDS
        least = 1 if self.in_memory else budget + SETTLE_SLACK_SECONDS
        if self.feed_settle_seconds < least:
            raise ConfigError("FEED_SETTLE_SECONDS",
                              f"must be at least {least} (MONGODB_REQUEST_TIMEOUT_MS plus "
                              f"{SETTLE_SLACK_SECONDS} s), got {self.feed_settle_seconds}")
        return self.feed_settle_seconds

    @property
    def in_memory(self) -> bool:
        """True when the opt-in mongomock store is used."""
        return self.mongodb_uri == MEMORY_URI
