"""Prometheus metrics: HTTP by route template, MongoDB commands, in-flight, build info.

Under gunicorn every worker writes its samples to PROMETHEUS_MULTIPROC_DIR and the
master serves the merged view on METRICS_PORT (gunicorn.conf.py), so the
API port never exposes /metrics. Each app gets its own registry so that several
apps in one process (tests) do not collide.
"""
from __future__ import annotations

import platform
import time

from flask import Flask, current_app, g, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pymongo import monitoring

from .version import VERSION

EXTENSION = "metrics"
# Tuned to the latency goals: most requests under 25 ms, the contract at 500 ms.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# RFC 9110's methods and PATCH; any other string a client sends counts as one label value,
# so that clients cannot grow the number of series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
OTHER_METHOD = "other"


class Metrics:
    """The service's metric families, registered in one registry."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        labels = ("method", "route", "status")
        self.requests = Counter("http_requests_total", "HTTP requests answered.", labels,
                                registry=registry)
        self.latency = Histogram("http_request_duration_seconds", "Time to answer a request.",
                                 labels, buckets=BUCKETS, registry=registry)
        self.in_flight = Gauge("http_requests_in_flight", "Requests being served.",
                               multiprocess_mode="livesum", registry=registry)
        self.db_latency = Histogram("mongodb_command_duration_seconds", "MongoDB command time.",
                                    ("command",), buckets=BUCKETS, registry=registry)
        self.db_errors = Counter("mongodb_command_errors_total", "MongoDB commands that failed.",
                                 ("command",), registry=registry)
        info = Gauge("data_ingest_build_info", "Version of the running service.",
                     ("version", "python"), multiprocess_mode="max", registry=registry)
        info.labels(VERSION, platform.python_version()).set(1)


class CommandMetrics(monitoring.CommandListener):
    """Times every MongoDB command the driver sends (pymongo's monitoring hook)."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        """Nothing to record until the command ends."""

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self.metrics.db_latency.labels(event.command_name).observe(event.duration_micros / 1e6)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self.metrics.db_latency.labels(event.command_name).observe(event.duration_micros / 1e6)
        self.metrics.db_errors.labels(event.command_name).inc()


def _start() -> None:
    g.metrics_started = time.perf_counter()
    metrics().in_flight.inc()


def _finish(response):
    elapsed = time.perf_counter() - g.metrics_started
    route = request.url_rule.rule if request.url_rule else "unmatched"
    method = request.method if request.method in METHODS else OTHER_METHOD
    labels = (method, route, str(response.status_code))
    metrics().requests.labels(*labels).inc()
    metrics().latency.labels(*labels).observe(elapsed)
    return response


def _leave(_exc) -> None:
    if "metrics_started" in g:
        metrics().in_flight.dec()


def metrics() -> Metrics:
    """The current app's metrics."""
    return current_app.extensions[EXTENSION]


def init_app(app: Flask) -> Metrics:
    """Create the app's metrics and time every request."""
    app.extensions[EXTENSION] = Metrics(CollectorRegistry(auto_describe=True))
    app.before_request(_start)
    app.after_request(_finish)
    app.teardown_request(_leave)
    return app.extensions[EXTENSION]
