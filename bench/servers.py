"""The processes a benchmark drives: FerretDB, single-node or sharded (unless MONGODB_URI is given),
and the service under gunicorn."""
from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable, NamedTuple

from pymongo import MongoClient

REPO = Path(__file__).resolve().parents[1]
FERRETDB_SCRIPT = REPO / "scripts" / "ferretdb.sh"
FERRETDB_BINARY = REPO / ".tools" / "bin" / "ferretdb"
NGINX_CONF = REPO / "deploy" / "nginx" / "nginx.conf"


def stop_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so that a killed benchmark still stops what it started."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ferretdb_version() -> str:
    """The version line of the FerretDB binary the benchmark starts."""
    out = subprocess.run([str(FERRETDB_BINARY), "--version"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[0].split(":", 1)[1].strip()


def server_version(uri: str) -> str:
    """What the server at `uri` says it is (buildInfo), for the result file."""
    with MongoClient(uri, serverSelectionTimeoutMS=10_000) as client:
        info = client.server_info()
    return f"MongoDB {info['version']} (buildInfo) at MONGODB_URI"


class Engine(NamedTuple):
    """A server to benchmark: its URI, what it is, and how to prepare a database on it."""

    uri: str
    server: str
    # Called with a database's name before the service creates its indexes there.
    prepare: Callable[[str], None] = lambda database: None
    # A database's records per shard, {node: [rows of each of its shards]}; {} when unsharded.
    placement: Callable[[str], dict] = lambda database: {}
    # The socket directory of the single-node PostgreSQL under FerretDB, for bench/buffers.py.
    pg_host: str | None = None


# BENCH_ENGINES names: the single-node FerretDB, or FerretDB on the Citus coordinator of
# three PostgreSQL servers (scripts/ferretdb.sh start-sharded).
ENGINES = {"single": ("install", "start", "PostgreSQL 15 + DocumentDB"),
           "sharded": ("install-sharded", "start-sharded",
                       "a Citus 12.1 coordinator and 2 workers, PostgreSQL 15 + distributed DocumentDB")}


@contextlib.contextmanager
def database(uri: str | None):
    """Yield (uri, server description, PostgreSQL's socket directory or None): the given
    server, or a throwaway single-node FerretDB 2."""
    with engine(uri, "single") as started:
        yield started.uri, started.server, started.pg_host


@contextlib.contextmanager
def engine(uri: str | None, name: str):
    """Yield an Engine: the server at `uri` (MongoDB), or a throwaway FerretDB 2 on the engine `name`."""
    if uri and uri.startswith("mongodb"):
        if name != "single":
            raise SystemExit(f"BENCH_ENGINES={name} starts its own FerretDB: unset MONGODB_URI")
        yield Engine(uri, os.environ.get("BENCH_SERVER") or server_version(uri))
        return
    install, start, description = ENGINES[name]
    subprocess.run([str(FERRETDB_SCRIPT), install], check=True)
    with tempfile.TemporaryDirectory(prefix="bench-ferretdb-") as workdir:
        port = free_port()
        # Three initdb and the cluster's set-up take half a minute on a quiet machine.
        subprocess.run([str(FERRETDB_SCRIPT), start, workdir, str(port)], check=True, timeout=600)
        try:
            server = f"FerretDB {ferretdb_version()} ({description})"
            uri = f"mongodb://127.0.0.1:{port}/"
            if name == "single":
                yield Engine(uri, server, pg_host=f"{workdir}/pg")
            else:
                yield Engine(uri, server, functools.partial(shard, workdir),
                             functools.partial(placement, workdir))
        finally:
            subprocess.run([str(FERRETDB_SCRIPT), "stop", workdir], check=False, timeout=120)


def shard(workdir: str, database: str) -> None:
    """Shard a database's collections on the sharded engine in `workdir`, as the service expects them."""
    subprocess.run([str(FERRETDB_SCRIPT), "shard", workdir, database], check=True, timeout=120)


PLACEMENT_SQL = """
SELECT s.nodeport, r.result FROM run_command_on_shards(
    (SELECT 'documentdb_data.documents_' || collection_id FROM documentdb_api_catalog.collections
     WHERE database_name = :'database' AND collection_name = 'records'),
    'SELECT count(*) FROM %s') r JOIN citus_shards s USING (shardid) ORDER BY s.nodeport, r.shardid
"""


def placement(workdir: str, database: str) -> dict:
    """Records per shard of a database on the sharded engine, by node (from its coordinator)."""
    ports = dict(line.split()[::-1] for line in Path(workdir, "ports").read_text().splitlines())
    out = subprocess.run(
        ["runuser", "-u", "postgres", "--", "psql", "-h", f"{workdir}/coordinator/pg", "-p",
         next(port for port, node in ports.items() if node == "coordinator"), "-d", "postgres",
         "-XAtq", "-v", f"database={database}", "-f", "-"],
        input=PLACEMENT_SQL, capture_output=True, text=True, check=True, timeout=120)
    rows: dict[str, list[int]] = {}
    for line in out.stdout.splitlines():
        port, count = line.split("|")
        rows.setdefault(ports[port], []).append(int(count))
    return rows


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


class Service:
    """The service exactly as deployed: gunicorn with the project's config module.

    `source` is the checkout it runs from, with its own .venv: this one, or another
    commit's, to compare two versions of the service in one run.
    """

    def __init__(self, workdir: Path, env: dict[str, str], source: Path = REPO,
                 app: str = "service:create_app()"):
        self.source = source
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "gunicorn.log"
        metrics = workdir / "prometheus"
        metrics.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "BIND": f"127.0.0.1:{self.port}", "METRICS_PORT": str(free_port()),
                    "PROMETHEUS_MULTIPROC_DIR": str(metrics),
                    "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"), **env}
        self.env.pop("API_KEYS_FILE", None)
        self.process: subprocess.Popen | None = None

    def init_db(self) -> None:
        """Create the indexes, as every deployment does before serving."""
        flask = self.source / ".venv" / "bin" / "flask"
        done = subprocess.run([str(flask), "--app", "service", "init-db"], cwd=self.source,
                              env=self.env, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"init-db failed:\n{done.stdout}{done.stderr[-2000:]}")

    def start(self, timeout: float = 30) -> "Service":
        """Start gunicorn and wait until /healthz answers."""
        command = [str(self.source / ".venv/bin/gunicorn"), "-c", "gunicorn.conf.py", self.app]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, cwd=self.source, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not _answers(f"{self.url}/healthz"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the service did not start; see {self.log_path}")
            time.sleep(0.2)
        return self

    def worker_pids(self) -> list[int]:
        """The gunicorn workers: the master's children."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()] if children.exists() else []

    def worker_rss_kib(self) -> int:
        """Resident memory of all workers together."""
        total = 0
        for pid in self.worker_pids():
            with contextlib.suppress(FileNotFoundError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        return total

    def stop(self) -> None:
        """Graceful shutdown, bounded."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> "Service":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class Edge:
    """Debian's nginx with the repository's nginx.conf, in front of a loopback port.

    The file is used as deployed; only its two addresses change (a free port to listen
    on, the upstream's port), so that several pairs can run at once.
    """

    LISTEN, UPSTREAM = "listen 8080 ", "server 127.0.0.1:8000;"

    def __init__(self, workdir: Path, upstream_port: int):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "nginx.log"
        conf = NGINX_CONF.read_text()
        assert conf.count(self.LISTEN) == 1 and conf.count(self.UPSTREAM) == 1, "nginx.conf's addresses moved"
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "nginx.conf").write_text(
            conf.replace(self.LISTEN, f"listen 127.0.0.1:{self.port} ")
                .replace(self.UPSTREAM, f"server 127.0.0.1:{upstream_port};"))
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 10) -> "Edge":
        """Start nginx in the foreground and wait until it accepts connections."""
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        # As root, nginx's workers would run as nobody, who cannot enter private directories.
        directives = "daemon off;" + (" user root;" if os.geteuid() == 0 else "")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [nginx, "-p", f"{self.workdir}/", "-e", "stderr", "-c", "nginx.conf", "-g", directives],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not _accepts(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nginx did not start:\n{self.log_path.read_text()}")
            time.sleep(0.1)
        return self

    def stop(self, timeout: float = 15) -> int | None:
        """SIGQUIT, nginx's graceful shutdown (SIGKILL only past `timeout`); return the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)

    def __enter__(self) -> "Edge":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
