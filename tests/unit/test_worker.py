"""The gunicorn worker: bodies read whole under a deadline, and refusals answered as JSON.

Requests are parsed by gunicorn's own parser from raw bytes, so the body readers
(length and chunked) are the real ones; the worker runs the real app.
"""
from __future__ import annotations

import json
import logging
import socket

import gevent.socket
import pytest
from gunicorn.config import Config
from gunicorn.http import errors as http_errors
from gunicorn.http.parser import RequestParser

from service.refusals import RefusedBody
from service.worker import Worker

MAX_BODY = 64


@pytest.fixture
def worker(app):
    """A Worker around the app, without gunicorn's process machinery."""
    w = Worker.__new__(Worker)
    w.body_timeout, w.max_body, w.wsgi = 1, MAX_BODY, app
    w.log = logging.getLogger("test.worker")
    return w


def request(raw: bytes):
    """The first request gunicorn parses from `raw`."""
    return next(RequestParser(Config(), [raw], ("127.0.0.1", 5000)))


def chunked(body: bytes) -> bytes:
    return b"POST /data HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body


def test_a_chunked_body_reaches_the_app_as_a_plain_one(worker):
    req = request(chunked(b"5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n"))
    assert worker.read_body(req, sock=None) is None
    assert req.body.read() == b"helloabc"
    assert ("CONTENT-LENGTH", "8") in req.headers
    assert all(name != "TRANSFER-ENCODING" for name, _ in req.headers)


def test_a_body_of_exactly_the_limit_is_read(worker):
    body = b"x" * MAX_BODY
    req = request(b"POST /data HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % MAX_BODY + body)
    assert worker.read_body(req, sock=None) is None and req.body.read() == body


@pytest.mark.parametrize("raw", [
    chunked(b"41\r\n" + b"x" * 65 + b"\r\n0\r\n\r\n"),                      # chunked, one byte over
    chunked(b"40\r\n" + b"x" * 64 + b"\r\n1\r\ny\r\n0\r\n\r\n"),            # over in a second chunk
    b"POST /data HTTP/1.1\r\nHost: x\r\nContent-Length: 65\r\n\r\n",        # declared: not read at all
])
def test_a_body_over_the_limit_is_413(worker, raw):
    refusal = worker.read_body(request(raw), sock=None)
    assert isinstance(refusal, RefusedBody) and refusal.status == 413


@pytest.mark.parametrize("framing", [b"zz\r\nhello\r\n0\r\n\r\n", b"5\r\nhelloXX0\r\n\r\n"])
def test_bad_chunked_framing_is_400_logged_as_a_warning_without_a_stack(worker, framing, caplog):
    with caplog.at_level(logging.WARNING, "test.worker"):
        refusal = worker.read_body(request(chunked(framing)), sock=None)
    assert refusal.status == 400 and "chunked" in refusal.message
    [line] = caplog.records
    assert line.levelno == logging.WARNING and line.exc_info is None


def test_a_body_slower_than_the_deadline_closes_the_connection_and_is_counted(worker, app):
    server, client = gevent.socket.socketpair()  # cooperative, as in the worker after its patch
    with server, client:
        client.sendall(b"POST /data HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        req = next(RequestParser(Config(), server, ("127.0.0.1", 5000)))
        with pytest.raises(StopIteration):
            worker.handle_request(("127.0.0.1", 8000), req, server, ("127.0.0.1", 5000))
    assert app.extensions["metrics"].registry.get_sample_value("http_slow_clients_total") == 1


def test_expect_100_continue_is_answered_before_the_body_is_read(worker):
    server, client = socket.socketpair()
    with server, client:
        client.sendall(b"POST /data HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                       b"Content-Length: 2\r\n\r\nok")
        req = next(RequestParser(Config(), server, ("127.0.0.1", 5000)))
        assert worker.read_body(req, server) is None
        assert client.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"


@pytest.mark.parametrize("error, status", [
    (http_errors.LimitRequestHeaders("too many"), 431),
    (http_errors.LimitRequestLine(9000, 4094), 414),
    (http_errors.InvalidRequestLine("GARBAGE"), 400),
    (http_errors.UnsupportedTransferCoding("gzip2"), 501),
])
def test_errors_in_the_request_head_are_the_apps_json_with_security_headers(worker, error, status):
    server, client = socket.socketpair()
    with server, client:
        client.shutdown(socket.SHUT_WR)  # the client sent all it had
        worker.handle_error(None, server, ("127.0.0.1", 5000), error)
        raw = b"".join(iter(lambda: client.recv(65536), b""))
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert lines[0].startswith(f"HTTP/1.1 {status} ")
    assert headers["Content-Type"] == "application/json" and headers["Connection"] == "close"
    assert headers["X-Content-Type-Options"] == "nosniff" and "X-Request-ID" in headers
    document = json.loads(body)
    assert document["code"] == status and document["request_id"] == headers["X-Request-ID"]


def test_the_refusal_is_counted_under_the_other_method(worker, app):
    server, client = socket.socketpair()
    with server, client:
        client.shutdown(socket.SHUT_WR)
        worker.handle_error(None, server, ("127.0.0.1", 5000), http_errors.InvalidRequestLine("x"))
    samples = [s for metric in app.extensions["metrics"].requests.collect() for s in metric.samples
               if s.name == "http_requests_total"]
    assert [(s.labels["method"], s.labels["route"], s.labels["status"]) for s in samples] == [
        ("other", "unmatched", "400")]


def test_a_refused_body_is_answered_before_authentication(make_app, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("")
    client = make_app(API_KEYS_FILE=str(keys)).test_client()
    response = client.post("/data", environ_overrides={"wsgi.input": RefusedBody(413, "too large")})
    assert response.status_code == 413 and response.get_json()["message"] == "too large"
