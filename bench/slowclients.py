"""Hostile clients against a live server, while a polite one measures what others still get.

Opens HEADER_TRICKLERS connections that send request headers one byte at a time,
BODY_TRICKLERS that send complete headers and then the body one byte at a time,
SILENT ones that never send a byte, and NON_READERS that ask for a page of 1,000
records and never read the answer; each reopens as soon as the server closes it, so
the pressure lasts the whole run. Meanwhile a second client sends RATE requests per
second, open loop, spread evenly over GET /healthz, POST /data and GET /data, each on
a new connection, and records the latency of each and whether it succeeded.

    python -m bench.slowclients http://127.0.0.1:8000 [--seconds 30] [--json out.json]

Used by the integration suite (tests/integration/test_slow_clients.py) and by
`make bench-slow`. Loopback only: the URL must be 127.0.0.1 or localhost.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urlsplit

HEADER_TRICKLERS = BODY_TRICKLERS = SILENT = NON_READERS = 256
RATE = 50
REQUEST_TIMEOUT = 5.0
TRICKLE_INTERVAL = 1.0
# A full request whose headers are sent one byte per TRICKLE_INTERVAL.
_TRICKLED_HEADERS = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
_BODY = b'{"source": "slowclients", "payload": {"n": 1}}'
# GET /data reads one page of a source of its own, so that its cost does not grow with the
# records the POSTs add (mongomock, behind `make run`, scans).
READ_SOURCE, PAGE = "slowclients-read", 10
# What the non-readers ask for: a page of BIG_PAGE records (about 100 KB of JSON).
BIG_SOURCE, BIG_PAGE = "slowclients-big", 1000
_UNREAD_REQUEST = (b"GET /data?source=%s&limit=%d HTTP/1.1\r\nHost: x\r\n\r\n"
                   % (BIG_SOURCE.encode(), BIG_PAGE))
_TRICKLED_BODY_HEAD = (b"POST /data HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Content-Length: %d\r\n\r\n" % (len(_BODY) * 10))


@dataclass
class Figures:
    """What the polite client saw, and how hard the hostile ones pushed."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    failure_reasons: dict[str, int] = field(default_factory=dict)
    hostile_connections: int = 0

    def summary(self) -> dict:
        """Per operation: requests, failures, p50/p99/max in ms."""
        result = {}
        everything = []
        for name, values in sorted(self.latencies.items()):
            everything.extend(values)
            result[name] = _stats(values, self.failures.get(name, 0))
        result["all"] = _stats(everything, sum(self.failures.values()))
        result["failure_reasons"] = dict(self.failure_reasons)
        result["hostile_connections_opened"] = self.hostile_connections
        return result


def _stats(values: list[float], failures: int) -> dict:
    ordered = sorted(values)

    def pct(p: float) -> float | None:
        if not ordered:
            return None
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 2)
    return {"requests": len(values) + failures, "failures": failures,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": pct(1.0)}


async def _hostile(host: str, port: int, kind: str, until: float, figures: Figures) -> None:
    """One hostile connection slot: trickle or stay silent, reopen when closed."""
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.5)
            continue
        figures.hostile_connections += 1
        try:
            await _trickle(reader, writer, kind, until)
        except OSError:
            pass
        finally:
            writer.close()


async def _trickle(reader, writer, kind: str, until: float) -> None:
    """Send one byte per TRICKLE_INTERVAL (nothing if silent) until the server answers or closes."""
    if kind == "unread":
        writer.write(_UNREAD_REQUEST)
        await writer.drain()
        # Never read, never close: the answer waits on the server's side until the run ends.
        await asyncio.sleep(max(0.0, until - time.monotonic()))
        return
    if kind == "body":
        writer.write(_TRICKLED_BODY_HEAD)
    data = _TRICKLED_HEADERS if kind == "header" else _BODY * 10
    for i in range(len(data)):
        if time.monotonic() >= until:
            return
        if kind != "silent":
            writer.write(data[i:i + 1])
            await writer.drain()
        try:  # an answer (a 4xx) or EOF both mean the server is done with this one
            await asyncio.wait_for(reader.read(65536), TRICKLE_INTERVAL)
            return
        except asyncio.TimeoutError:
            pass


def _request(name: str, host: str) -> bytes:
    if name == "POST /data":
        return (b"POST /data HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (host.encode(), len(_BODY)) + _BODY)
    path = b"/healthz" if name == "GET /healthz" else b"/data?source=%s&limit=10" % READ_SOURCE.encode()
    return b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, host.encode())


def _post(url: str, body: dict) -> None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:  # nosec B310: loopback
        answer.read()


def _seed(url: str) -> None:
    """Store the pages the clients read: PAGE small records and BIG_PAGE for the non-readers, each
    of a source the POSTs never write."""
    for n in range(PAGE):
        _post(f"{url}/data", {"source": READ_SOURCE, "payload": {"n": n}})
    big = [{"source": BIG_SOURCE, "payload": {"n": n}} for n in range(BIG_PAGE)]
    _post(f"{url}/data/batch", {"records": big})


async def _polite(host: str, port: int, name: str, figures: Figures) -> None:
    """One request on a new connection; a failure is a timeout, an error or a non-2xx status."""
    started = time.perf_counter()
    writer = None
    try:
        async def exchange() -> bytes:
            nonlocal writer
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(_request(name, host))
            await writer.drain()
            return await reader.read()
        answer = await asyncio.wait_for(exchange(), REQUEST_TIMEOUT)
        status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.") else 0
        if not 200 <= status < 300:
            raise ValueError(f"status {status}")
        figures.latencies.setdefault(name, []).append(time.perf_counter() - started)
    except (OSError, ValueError, IndexError, asyncio.TimeoutError) as exc:
        figures.failures[name] = figures.failures.get(name, 0) + 1
        reason = type(exc).__name__ if not isinstance(exc, ValueError) else str(exc)
        figures.failure_reasons[reason] = figures.failure_reasons.get(reason, 0) + 1
    finally:
        if writer is not None:
            writer.close()


async def _polite_load(host: str, port: int, seconds: float, rate: int, figures: Figures) -> None:
    names = ("GET /healthz", "POST /data", "GET /data")
    polite, start = [], time.monotonic()
    for i in range(int(seconds * rate)):
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        polite.append(asyncio.create_task(_polite(host, port, names[i % len(names)], figures)))
    await asyncio.gather(*polite)


async def _hostile_load(host: str, port: int, seconds: float, counts: tuple[int, ...]) -> int:
    figures, until = Figures(), time.monotonic() + seconds
    await asyncio.gather(*(_hostile(host, port, kind, until, figures)
                           for kind, count in zip(("header", "body", "silent", "unread"), counts)
                           for _ in range(count)))
    return figures.hostile_connections


def _hostile_process(host: str, port: int, seconds: float, counts: tuple[int, ...], opened) -> None:
    opened.value = asyncio.run(_hostile_load(host, port, seconds, counts))


def run(url: str, seconds: float = 30.0, rate: int = RATE, settle: float = 3.0,
        counts: tuple[int, ...] = (HEADER_TRICKLERS, BODY_TRICKLERS, SILENT, NON_READERS)) -> Figures:
    """The whole scenario; the polite client starts once the hostile connections are open
    and the app has computed the pages the non-readers will never read.

    The hostile connections live in a process of their own, so that their bookkeeping
    never delays the polite client's event loop (which would count as server latency).
    """
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or 80
    if host not in ("127.0.0.1", "localhost"):
        raise SystemExit("slow-client load targets loopback only")
    _seed(url)
    context = multiprocessing.get_context("spawn")
    opened = context.Value("i", 0)
    hostile = context.Process(target=_hostile_process,
                              args=(host, port, settle + seconds + 1, counts, opened))
    hostile.start()
    try:
        time.sleep(settle)
        _wait_until_served(url, settle + seconds)
        figures = Figures()
        asyncio.run(_polite_load(host, port, seconds, rate, figures))
    finally:
        hostile.join(timeout=settle + seconds + 30)
        if hostile.is_alive():
            hostile.kill()
    figures.hostile_connections = opened.value
    return figures


def _wait_until_served(url: str, most: float) -> None:
    """Wait (at most `most` seconds) until /healthz answers within 50 ms five times in a row:
    the pages the non-readers asked for are then computed, and only their unread answers remain."""
    deadline, fast = time.monotonic() + most, 0
    while fast < 5 and time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=REQUEST_TIMEOUT) as answer:  # nosec B310
                answer.read()
            fast = fast + 1 if time.perf_counter() - started < 0.05 else 0
        except OSError:
            fast = 0
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    """Run the scenario and print (and optionally save) the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=int, default=RATE)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    summary = run(args.url, args.seconds, args.rate).summary()
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            out.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
