"""SIGTERM to gunicorn: in-flight requests finish, new connections are refused, nothing is lost."""
from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import pytest
import requests

from . import harness

pytestmark = pytest.mark.fault

GRACEFUL_TIMEOUT_S = 10
SLOW_REQUESTS = 6


class SlowPost:
    """A POST whose body arrives in two halves, so it is in flight while the server stops."""

    def __init__(self, port: int, body: dict, host: str = "127.0.0.1"):
        self.raw = json.dumps(body).encode()
        self.connection = http.client.HTTPConnection(host, port, timeout=30)
        self.connection.putrequest("POST", "/data")
        self.connection.putheader("Content-Type", "application/json")
        self.connection.putheader("Content-Length", str(len(self.raw)))
        self.connection.endheaders()
        self.connection.send(self.raw[: len(self.raw) // 2])

    def finish(self) -> tuple[int, dict]:
        """Send the rest of the body and read the answer."""
        try:
            self.connection.send(self.raw[len(self.raw) // 2:])
            response = self.connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            self.connection.close()


class Hammer:
    """Threads POSTing on fresh connections until the server is gone."""

    def __init__(self, url: str, source: str, threads: int = 8):
        self.url, self.source = url, source
        self.results: list[tuple[int | None, dict | None]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run) for _ in range(threads)]

    def run(self) -> None:
        refused_in_a_row = 0
        while not self.stop.is_set() and refused_in_a_row < 3:
            try:
                response = requests.post(f"{self.url}/data", json={"source": self.source, "payload": {}},
                                         headers={"Connection": "close"}, timeout=30)
            except requests.ConnectionError:
                self.results.append((None, None))
                refused_in_a_row += 1
                time.sleep(0.05)
                continue
            refused_in_a_row = 0
            self.results.append((response.status_code, response.json()))

    def __enter__(self) -> "Hammer":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)


def refuses_connections(port: int) -> bool:
    """True if nothing accepts TCP connections on the port any more."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_sigterm_finishes_in_flight_requests_and_loses_no_write(start_service, local_server, mongodb_uri,
                                                                database_name):
    server = start_service(MONGODB_URI=mongodb_uri, MONGODB_DATABASE=database_name,
                           GUNICORN_GRACEFUL_TIMEOUT=str(GRACEFUL_TIMEOUT_S))
    source = harness.unique("shutdown")
    with Hammer(server.url, source) as hammer:
        time.sleep(0.5)
        slow = [SlowPost(server.port, {"source": source, "payload": {"n": n}}) for n in range(SLOW_REQUESTS)]
        time.sleep(0.3)  # let the workers pick them up
        signalled = time.monotonic()
        server.terminate()
        time.sleep(1)  # in-flight bodies are still incomplete a second after SIGTERM
        slow_results = [request.finish() for request in slow]
        exit_code = server.process.wait(GRACEFUL_TIMEOUT_S + 10)
        shutdown_s = time.monotonic() - signalled
    assert exit_code == 0, server.log_tail()
    assert [status for status, _ in slow_results] == [201] * SLOW_REQUESTS
    assert refuses_connections(server.port)

    statuses = [status for status, _ in hammer.results]
    assert set(statuses) <= {201, None}, f"only 201 or a refused connection, got {set(statuses)}"
    acknowledged = [body["id"] for status, body in hammer.results if status == 201]
    acknowledged += [body["id"] for _, body in slow_results]
    # Read back through the suite's own server: the stopped one cannot answer any more.
    stored = {item["id"] for item in harness.Client(local_server.url).walk(limit=1000, source=source)}
    assert set(acknowledged) <= stored
    harness.report("graceful shutdown (SIGTERM under load)", slow_in_flight=SLOW_REQUESTS,
                   slow_completed_201=SLOW_REQUESTS, acknowledged=len(acknowledged),
                   stored=len(stored), refused=statuses.count(None), shutdown_s=f"{shutdown_s:.2f}",
                   graceful_timeout_s=GRACEFUL_TIMEOUT_S)
