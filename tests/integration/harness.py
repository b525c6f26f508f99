"""Processes the integration suite drives: the service under gunicorn, FerretDB 2, a mute database."""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

from bench.servers import Edge  # noqa: F401 (the suite's nginx, shared with the benchmarks)

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
FERRETDB_SCRIPT = REPO / "scripts" / "ferretdb.sh"
FERRETDB_BINARY = REPO / ".tools" / "bin" / "ferretdb"

# Figures the fault tests measure, printed in the terminal summary of the run.
FIGURES: list[str] = []
# One cursor secret for every server of a run, as every pod of a deployment shares one.
CURSOR_SECRET = os.environ.get("CURSOR_SECRET") or secrets.token_hex(32)


def report(test: str, **figures) -> None:
    """Keep measured figures for the end-of-run summary."""
    FIGURES.append(f"{test}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def request_bound_s(budget_ms: int, timeout_ms: int = 2000, slack_s: float = 2.0) -> float:
    """The longest a request may take while the database fails: its budget
    (MONGODB_REQUEST_TIMEOUT_MS), plus one connection attempt (MONGODB_TIMEOUT_MS) the driver
    may have begun just before the deadline, plus slack for a loaded 2-core machine."""
    return (budget_ms + timeout_ms) / 1000 + slack_s


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.1) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def sharded_engine() -> bool:
    """True when the run's server is the sharded DocumentDB engine (`make test-sharded`)."""
    return os.environ.get("FERRETDB_SHARDED") == "1"


def shard(database: str) -> None:
    """Shard a database's records and keys on that engine, as `make test-sharded` does the run's own."""
    subprocess.run([str(FERRETDB_SCRIPT), "shard", os.environ["FERRETDB_SHARDED_DIR"], database],
                   check=True, timeout=90)


def unique(prefix: str) -> str:
    """A name no other test or run uses (a source, a database)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def answers(url: str) -> bool:
    """True if GET `url` returns 200."""
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


class Client:
    """requests with the base URL filled in and a timeout that is never forgotten."""

    TIMEOUT = 15

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.session = requests.Session()

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", self.TIMEOUT)
        return self.session.request(method, self.base_url + path, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def create(self, source: str, payload: dict | None = None, **fields) -> dict:
        """POST one record that must be accepted; return the stored record."""
        response = self.post("/data", json={"source": source, "payload": payload or {}, **fields})
        assert response.status_code == 201, response.text
        return response.json()

    def walk(self, limit: int = 100, **params) -> list[dict]:
        """Every record a cursor walk returns, page after page."""
        items, cursor = [], None
        for _ in range(10_000):
            query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
            response = self.get("/data", params=query)
            assert response.status_code == 200, response.text
            page = response.json()
            items += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return items
        raise AssertionError("the cursor walk did not end")


class ServiceProcess:
    """The service started exactly as deployed: gunicorn with the project's config module."""

    def __init__(self, workdir: Path, **env: str):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "gunicorn.log"
        self.env = self._environment(env)
        self.process: subprocess.Popen | None = None

    def _environment(self, overrides: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("BASE_URL", "API_KEYS_FILE")}
        metrics_dir = self.workdir / "prometheus"
        metrics_dir.mkdir(exist_ok=True)
        env.update(
            BIND=f"127.0.0.1:{self.port}",
            WEB_CONCURRENCY="2",
            METRICS_PORT=str(free_port()),
            PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
            # gunicorn's control socket defaults to one path per user: keep servers apart.
            XDG_RUNTIME_DIR=str(self.workdir),
            CURSOR_SECRET=CURSOR_SECRET,
        )
        env.update(overrides)
        return env

    def init_db(self) -> None:
        """Create the indexes, as every deployment does before serving."""
        result = subprocess.run(
            [str(VENV_BIN / "flask"), "--app", "service", "init-db"],
            cwd=REPO, env=self.env, capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, f"init-db failed:\n{result.stdout}{result.stderr}"

    def start(self, timeout: float = 30) -> "ServiceProcess":
        """Start gunicorn and wait until /healthz answers."""
        command = [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py", "service:create_app()"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        healthy = wait_until(lambda: self.process.poll() is None and answers(f"{self.url}/healthz"), timeout)
        if not healthy:
            self.stop()
            raise RuntimeError(f"the service did not become healthy:\n{self.log_tail()}")
        return self

    def terminate(self) -> None:
        """Send SIGTERM to the gunicorn master: the start of a graceful shutdown."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 40) -> int | None:
        """Shut down gracefully (SIGKILL only past `timeout`); return the exit code."""
        if self.process is None:
            return None
        self.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        """The end of gunicorn's log, for failure messages."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def raw_exchange(url: str, data: bytes, timeout: float = 20.0) -> tuple[bytes, float]:
    """Send `data`, read until the server closes; return what it answered and how long it took."""
    host, port = url.split("//")[1].split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
    return answer, time.monotonic() - started


def parse_answer(answer: bytes) -> tuple[int, dict, bytes]:
    """Status, headers (lower-case names, the last of each) and body of a raw HTTP/1.1 answer."""
    head, body = answer.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


class FerretDB:
    """A FerretDB 2 + PostgreSQL of its own, which a test may kill and restart.

    Its data lives in a directory of the system's temporary space, because PostgreSQL runs
    as its own user and must reach it (pytest's `tmp_path` is private to root).
    """

    def __init__(self):
        self.workdir = Path(tempfile.mkdtemp(prefix="ferretdb-"))
        self.port = free_port()
        self.uri = f"mongodb://127.0.0.1:{self.port}/"

    @staticmethod
    def available() -> bool:
        """True once `scripts/ferretdb.sh install` has built the server."""
        return FERRETDB_BINARY.exists()

    def _script(self, command: str, *args: str) -> None:
        subprocess.run([str(FERRETDB_SCRIPT), command, str(self.workdir), *args], check=True, timeout=90)

    def start(self) -> "FerretDB":
        """Start (or restart, recovering after a crash) on the same port and data."""
        self._script("start", str(self.port))
        return self

    def kill(self) -> None:
        """SIGKILL to FerretDB and every PostgreSQL process: a crash, nothing flushed politely."""
        self._script("kill")

    def stop(self) -> None:
        """Stop politely and delete the data."""
        self._script("stop")
        shutil.rmtree(self.workdir, ignore_errors=True)


class LoopbackListener:
    """A TCP listener on a free loopback port that hands each connection to `handle`."""

    def __init__(self):
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.port = self._server.getsockname()[1]
        self.uri = f"mongodb://127.0.0.1:{self.port}/"
        self._closing = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            self.handle(conn)

    def __enter__(self):
        self._threads[0].start()
        return self

    def __exit__(self, *exc) -> None:
        self._closing.set()
        for thread in self._threads:
            thread.join(5)
        self._server.close()


class MuteDatabase(LoopbackListener):
    """A TCP listener that accepts connections and never answers: a hung database."""

    def __init__(self):
        super().__init__()
        self._held: list[socket.socket] = []

    def handle(self, conn: socket.socket) -> None:
        self._held.append(conn)

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        for conn in self._held:
            conn.close()


class FaultProxy(LoopbackListener):
    """A TCP proxy to a database that can fall silent (connections stay open, bytes stop),
    and that can hold each message to the database for `delay()` seconds: a slow network."""

    def __init__(self, upstream_port: int, delay=None):
        super().__init__()
        self.upstream_port = upstream_port
        self.delay = delay
        self._flowing = threading.Event()
        self._flowing.set()
        self._answering = threading.Event()
        self._answering.set()
        self._lock = threading.Lock()
        self._hold_after: int | None = None

    def silence(self) -> None:
        """Stop forwarding in both directions, as a hung database would."""
        self._flowing.clear()

    def hold_answers_after(self, sent_bytes: int) -> None:
        """Hold every answer once `sent_bytes` more bytes of commands have gone through:
        a large write reaches the database and commits, and nobody hears that it did."""
        with self._lock:
            self._hold_after = sent_bytes

    def answer(self) -> None:
        """Deliver answers again (held ones included; their requests have given up by then)."""
        self._answering.set()

    def handle(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
        except OSError:  # the database is down: refuse this connection, keep accepting others
            client.close()
            return
        # Before the pumps start: either pump may close both sockets when its side ends.
        client.settimeout(0.2)
        upstream.settimeout(0.2)
        for src, dst, gate in ((client, upstream, self._flowing), (upstream, client, self._answering)):
            thread = threading.Thread(target=self._pump, args=(src, dst, gate), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _pump(self, src: socket.socket, dst: socket.socket, gate: threading.Event) -> None:
        with src, dst:
            while not self._closing.is_set():
                data = self._receive(src)
                if data is None or (data and not self._forward(dst, data, gate)):
                    return

    @staticmethod
    def _receive(src: socket.socket) -> bytes | None:
        """The next bytes (empty when none arrived yet); None once the connection is over."""
        try:
            return src.recv(65536) or None
        except TimeoutError:
            return b""
        except OSError:
            return None

    def _forward(self, dst: socket.socket, data: bytes, gate: threading.Event) -> bool:
        """Send `data` on once the proxy and this direction flow; False if the connection is over."""
        if self.delay is not None and gate is self._flowing:
            time.sleep(self.delay())
        while not (self._flowing.wait(0.2) and gate.wait(0.2)):
            if self._closing.is_set():
                return False
        try:
            dst.sendall(data)
        except OSError:
            return False
        if gate is self._flowing:
            self._count_sent(len(data))
        return True

    def _count_sent(self, size: int) -> None:
        with self._lock:
            if self._hold_after is not None:
                self._hold_after -= size
                if self._hold_after <= 0:
                    self._hold_after = None
                    self._answering.clear()
