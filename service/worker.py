"""The gunicorn worker: gevent, with deadlines on slow clients and JSON for every refusal.

gunicorn's gevent worker serves each connection in a greenlet, so a client that sends
slowly, or not at all, holds a few kilobytes of memory instead of a thread; views stay
plain synchronous code (the worker monkey-patches sockets, so pymongo and the views
yield while they wait). Bounds, all from service/config.py:

- headers: the worker's keep-alive timeout (gunicorn.conf.py sets it to
  CLIENT_HEADER_TIMEOUT) covers reading each request's headers, from the moment the
  connection opens or the previous response ends; past it the connection is closed.
- body: read whole here, before the app runs, within CLIENT_BODY_TIMEOUT (past it the
  connection is closed and counted in http_slow_clients_total) and MAX_CONTENT_LENGTH
  (413 above it, chunked or not, declared or not); bad
  chunked framing is a 400 logged at WARNING without a stack.
- connections: GUNICORN_WORKER_CONNECTIONS per worker; past it a worker stops
  accepting and the kernel's backlog (or another worker) holds new ones.

Every refusal, and every error gunicorn itself detects in a request's head (431, 414,
400, 501), is answered by the app through service/refusals.py.
"""
from __future__ import annotations

import io
import socket

import gevent
from gunicorn import util
from gunicorn.http import errors as http_errors
from gunicorn.workers.ggevent import GeventWorker

from .config import Settings
from .refusals import RefusedBody

# gunicorn's own statuses for what it refuses while parsing a request's head.
_HEAD_STATUS = {
    http_errors.LimitRequestLine: 414,
    http_errors.LimitRequestHeaders: 431,
    http_errors.UnsupportedTransferCoding: 501,
    http_errors.ExpectationFailed: 417,
    http_errors.ForbiddenProxyRequest: 403,
}
_BAD_FRAMING = (http_errors.InvalidChunkSize, http_errors.ChunkMissingTerminator,
                http_errors.InvalidChunkExtension)
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _SlowBody(Exception):
    """The body did not arrive within CLIENT_BODY_TIMEOUT."""


class Worker(GeventWorker):
    """gunicorn's gevent worker, reading bodies under a deadline and refusing in JSON."""

    def init_process(self) -> None:
        settings = Settings.from_env()
        self.body_timeout = settings.client_body_timeout
        self.max_body = settings.max_content_length
        super().init_process()

    def handle_request(self, listener_name, req, sock, addr):
        """Read the body whole (or refuse it), then let gunicorn run the app."""
        try:
            refusal = self.read_body(req, sock)
        except _SlowBody:
            # Closed without an answer, as nginx does: rendering one for each of many slow
            # clients that time out together would cost the others their latency.
            self.wsgi.extensions["metrics"].slow_clients.inc()
            raise StopIteration() from None  # gunicorn closes the connection
        if refusal is None:
            return super().handle_request(listener_name, req, sock, addr)
        req.force_close()  # what is left of the body cannot be skipped safely
        req.body = refusal
        try:
            return super().handle_request(listener_name, req, sock, addr)
        finally:
            _linger(sock)

    def read_body(self, req, sock) -> RefusedBody | None:
        """Replace `req.body` by its bytes; a RefusedBody when it cannot be accepted.

        Raises _SlowBody when the body takes longer than CLIENT_BODY_TIMEOUT.
        """
        declared = next((value for name, value in req.headers if name == "CONTENT-LENGTH"), None)
        if declared is not None and int(declared) > self.max_body:
            return RefusedBody(413, f"The body is larger than {self.max_body} bytes.")
        if getattr(req, "_expected_100_continue", False):
            sock.sendall(_CONTINUE)  # before reading, or the client waits for it
            req._expected_100_continue = False
        try:
            with gevent.Timeout(self.body_timeout, _SlowBody):
                data = req.body.read(self.max_body + 1)
        except _BAD_FRAMING as exc:
            self.log.warning("invalid chunked body from %s: %s", _ip(req.peer_addr), exc)
            return RefusedBody(400, f"Invalid chunked framing: {exc}.")
        if len(data) > self.max_body:
            return RefusedBody(413, f"The body is larger than {self.max_body} bytes.")
        if any(name == "TRANSFER-ENCODING" for name, _ in req.headers):
            # The app sees a plain body of known length, whatever the framing on the wire.
            req.headers = [(n, v) for n, v in req.headers if n != "TRANSFER-ENCODING"]
            req.headers.append(("CONTENT-LENGTH", str(len(data))))
        req.body = io.BytesIO(data)
        return None

    def handle_error(self, req, client, addr, exc):
        """Answer what gunicorn refuses in a request's head with the app's JSON error."""
        if not isinstance(exc, http_errors.ParseException):
            return super().handle_error(req, client, addr, exc)
        status = next((code for kind, code in _HEAD_STATUS.items() if isinstance(exc, kind)), 400)
        self.log.warning("invalid request from %s: %s", _ip(addr), exc)
        try:
            util.write(client, self.render(status, str(exc) or type(exc).__name__, addr))
            _linger(client)
        except Exception:  # the client may be gone; there is nothing left to tell it
            self.log.debug("failed to send the error response")

    def render(self, status: int, message: str, addr) -> bytes:
        """The app's answer to a refusal of a request it never saw, as raw HTTP/1.1 bytes."""
        environ = {
            "REQUEST_METHOD": "-", "PATH_INFO": "/", "QUERY_STRING": "", "SERVER_NAME": "-",
            "SERVER_PORT": "0", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": _ip(addr),
            "wsgi.url_scheme": "http", "wsgi.input": RefusedBody(status, message),
            "wsgi.errors": io.StringIO(), "wsgi.multithread": True, "wsgi.multiprocess": True,
            "wsgi.run_once": False, "wsgi.version": (1, 0),
        }
        started: list = []
        body = b"".join(self.wsgi(environ, lambda status_line, headers, exc_info=None: started.extend(
            [status_line, headers])))
        head = "".join(f"{name}: {value}\r\n" for name, value in started[1])
        return f"HTTP/1.1 {started[0]}\r\n{head}Connection: close\r\n\r\n".encode("latin-1") + body


def _linger(sock, seconds: float = 1.0, most: int = 2**20) -> None:
    """Close gently after a refusal: stop sending, then read and drop what the client still sends.

    Closing a socket with unread bytes makes the kernel send a reset, which can destroy
    the answer before the client reads it. Bounded in time and bytes (nginx's
    lingering_close).
    """
    try:
        sock.shutdown(socket.SHUT_WR)
        with gevent.Timeout(seconds, False):
            while most > 0:
                data = sock.recv(65536)
                if not data:
                    break
                most -= len(data)
    except OSError:
        pass


def _ip(addr) -> str:
    return addr[0] if isinstance(addr, tuple) and addr else str(addr)
