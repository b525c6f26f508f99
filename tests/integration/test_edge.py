"""The nginx edge (deploy/nginx/nginx.conf) in front of gunicorn, as every deployment runs them.

Everything nginx answers itself has the app's JSON error shape, security headers and an
X-Request-ID; what it passes through is the app's answer, unchanged.
"""
from __future__ import annotations

import json
import socket
import time

import pytest
import requests

from . import harness


@pytest.fixture
def pair(start_service, start_edge):
    """`make run`'s server (memory://) behind the edge: quick to start, the same protocol."""
    server = start_service(MONGODB_URI="memory://")
    edge = start_edge(server.port)
    edge.server = server
    return edge


def assert_json_error(answer: bytes, status: int) -> dict:
    """The answer is the app's JSON error for `status`, with the API's security headers."""
    code, headers, body = harness.parse_answer(answer)
    document = json.loads(body)
    assert code == status and document["code"] == status, answer[:300]
    assert set(document) == {"code", "status", "message", "request_id"}
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff" and headers["cache-control"] == "no-store"
    assert headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert document["request_id"] == headers["x-request-id"]
    return document


HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def chunked_post(chunks: bytes) -> bytes:
    return (b"POST /data HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks)


@pytest.mark.parametrize("request_head, status", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: " + b"b" * 9000 + b"\r\n\r\n", 431),
    (b"POST /data HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n", 413),
    (b"POST /data HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: br\r\n\r\n", 501),
    (b"GET /.edge-error HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
], ids=["400-malformed", "414-request-line", "431-header", "413-declared", "501-coding", "404-internal"])
def test_what_nginx_refuses_is_the_apps_json_error(pair, request_head, status):
    answer, _ = harness.raw_exchange(pair.url, request_head)
    assert_json_error(answer, status)


def test_a_chunked_body_over_the_limit_is_413_and_nothing_is_stored(pair):
    record = b'{"source": "chunked", "payload": {"x": "' + b"y" * 2**20 + b'"}}'
    framed = b"".join(b"%x\r\n%s\r\n" % (len(part), part)
                      for part in (record[i:i + 65536] for i in range(0, len(record), 65536)))
    answer, _ = harness.raw_exchange(pair.url, chunked_post(framed + b"0\r\n\r\n"))
    assert_json_error(answer, 413)
    assert requests.get(f"{pair.url}/data?source=chunked", timeout=5).json()["items"] == []


def test_a_chunked_body_within_the_limit_is_stored(pair):
    record = b'{"source": "chunked", "payload": {"n": 1}}'
    framed = b"%x\r\n%s\r\n0\r\n\r\n" % (len(record), record)
    answer, _ = harness.raw_exchange(pair.url, chunked_post(framed))
    assert harness.parse_answer(answer)[0] == 201


def test_malformed_chunked_framing_is_400(pair):
    answer, _ = harness.raw_exchange(pair.url, chunked_post(b"zz\r\n{}\r\n0\r\n\r\n"))
    assert_json_error(answer, 400)


def test_an_oversized_upload_announced_with_expect_is_refused_before_100_continue(pair):
    head = (b"POST /data HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 2000000\r\nExpect: 100-continue\r\n\r\n")
    with socket.create_connection(("127.0.0.1", pair.port), timeout=10) as sock:
        sock.sendall(head)
        first = sock.recv(65536)
    assert not first.startswith(b"HTTP/1.1 100")
    assert harness.parse_answer(first)[0] in (413, 417)


def test_a_stopped_app_is_a_json_502_with_retry_after(pair):
    pair.server.stop()
    answer, _ = harness.raw_exchange(pair.url, HEALTHZ)
    assert_json_error(answer, 502)
    assert harness.parse_answer(answer)[1]["retry-after"] == "1"


def test_an_app_that_does_not_accept_is_a_json_504_after_the_connect_deadline(start_edge):
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        # Connections nobody accepts fill the backlog; the kernel then drops nginx's SYNs.
        fillers = [socket.socket() for _ in range(3)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(full.getsockname())
        edge = start_edge(full.getsockname()[1])
        answer, took = harness.raw_exchange(edge.url, HEALTHZ)
        for filler in fillers:
            filler.close()
    assert_json_error(answer, 504)
    assert 1.5 <= took < 10


def test_requests_past_the_in_progress_cap_get_a_json_503(pair):
    # Requests whose bodies never arrive are in progress until the body deadline (10 s).
    head = b"POST /data HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n"
    held = []
    try:
        for _ in range(1000):
            sock = socket.create_connection(("127.0.0.1", pair.port), timeout=5)
            sock.sendall(head)
            held.append(sock)
        time.sleep(0.5)
        answer, _ = harness.raw_exchange(pair.url, HEALTHZ)
    finally:
        for sock in held:
            sock.close()
    assert_json_error(answer, 503)
    assert harness.parse_answer(answer)[1]["retry-after"] == "1"


def test_a_clients_request_id_reaches_the_app_log_and_comes_back(pair):
    offered = HEALTHZ.replace(b"Host: x\r\n", b"Host: x\r\nX-Request-ID: edge-test.1\r\n")
    answer, _ = harness.raw_exchange(pair.url, offered)
    status, headers, _ = harness.parse_answer(answer)
    assert status == 200 and headers["x-request-id"] == "edge-test.1"
    # Passed through, not added twice: the app's headers arrive as the app sent them.
    assert answer.lower().count(b"x-content-type-options") == 1
    assert harness.wait_until(lambda: '"request_id": "edge-test.1"' in pair.server.log_path.read_text(), 5)


def test_nginx_makes_the_request_id_when_the_clients_is_malformed(pair):
    response = requests.get(f"{pair.url}/data/nothing", headers={"X-Request-ID": "bad id!"}, timeout=5)
    made = response.headers["X-Request-ID"]
    assert response.status_code == 404 and response.json()["request_id"] == made
    assert len(made) == 32 and made != "bad id!"
    assert harness.wait_until(lambda: made in (pair.workdir / "nginx.log").read_text(), 5)


def test_headers_slower_than_the_deadline_are_cut_without_an_answer(pair):
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", pair.port), timeout=15) as sock:
        for byte in b"GET /healthz HTTP/1.1\r\n":
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.4)
        closed_after = time.monotonic() - started
        assert sock.recv(100) == b""
    assert 4.5 <= closed_after <= 8


def test_a_body_slower_than_the_deadline_is_cut_without_an_answer(pair):
    head = (b"POST /data HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{")
    answer, took = harness.raw_exchange(pair.url, head)
    assert answer == b"" and 9.5 <= took < 13
