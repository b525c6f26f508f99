"""Request ids, JSON log lines, Prometheus metrics."""
from __future__ import annotations

import json
import logging

import pytest
from prometheus_client import generate_latest

from service.logs import RequestIdFilter, configure_logging, formatter


def access_lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "service.access"]


def test_request_id_is_generated_and_echoed(client, caplog):
    caplog.set_level(logging.INFO)
    response = client.get("/healthz")
    request_id = response.headers["X-Request-ID"]
    assert len(request_id) == 32
    assert access_lines(caplog)[-1].request_id == request_id


@pytest.mark.parametrize("offered, kept", [("abc-123.x:y_z", True), ("a" * 128, True),
                                           ("a" * 129, False), ("bad id", False), ("", False)])
def test_well_formed_request_ids_are_kept(client, offered, kept):
    echoed = client.get("/healthz", headers={"X-Request-ID": offered}).headers["X-Request-ID"]
    assert (echoed == offered) is kept


def test_error_bodies_carry_the_request_id(client):
    response = client.get("/data/unknown", headers={"X-Request-ID": "trace-1"})
    assert response.get_json()["request_id"] == "trace-1"


def test_access_line_fields(client, caplog):
    caplog.set_level(logging.INFO)
    client.post("/data", json={"source": "s", "payload": {}}, headers={"X-Request-ID": "r-1"})
    line = json.loads(formatter().format(access_lines(caplog)[-1]))
    assert line["level"] == "INFO" and line["request_id"] == "r-1"
    assert (line["method"], line["route"], line["status"]) == ("POST", "/data", 201)
    assert line["duration_ms"] >= 0 and line["client"] == "127.0.0.1" and "time" in line


def test_route_is_the_template_not_the_path(client, caplog):
    caplog.set_level(logging.INFO)
    client.get("/data/" + "0" * 24)
    assert access_lines(caplog)[-1].route == "/data/<record_id>"


def test_no_payload_value_or_key_is_logged(client, caplog):
    caplog.set_level(logging.DEBUG)
    secret = {"card-number-key": "4111-1111-1111-1111"}
    client.post("/data", json={"source": "s", "payload": secret})
    client.post("/data", json={"source": "s", "payload": {"$bad": "4111-1111-1111-1111"}})
    client.post("/data", json={"source": "s", "payload": secret}, headers={"Idempotency-Key": "k"})
    client.post("/data", json={"source": "s", "payload": {"x": 1}}, headers={"Idempotency-Key": "k"})
    rendered = "\n".join(formatter().format(record) for record in caplog.records)
    assert "4111" not in rendered and "card-number-key" not in rendered


def test_configure_logging_installs_one_json_handler_on_stdout():
    configure_logging("INFO")
    configure_logging("WARNING")
    ours = [h for h in logging.getLogger().handlers if getattr(h, "data_ingest", False)]
    assert len(ours) == 1
    assert logging.getLogger().level == logging.WARNING
    record = logging.LogRecord("service.test", logging.INFO, __file__, 1, "hello", (), None)
    ours[0].filter(record)
    line = json.loads(ours[0].format(record))
    assert line["message"] == "hello" and line["request_id"] is None


def test_filter_keeps_an_explicit_request_id():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    record.request_id = "given"
    assert RequestIdFilter().filter(record) and record.request_id == "given"


def test_http_metrics_by_route_method_and_status(app, client):
    client.post("/data", json={"source": "s", "payload": {}})
    client.get("/data/" + "0" * 24)
    client.get("/nowhere")
    text = generate_latest(app.extensions["metrics"].registry).decode()
    assert 'http_requests_total{method="POST",route="/data",status="201"} 1.0' in text
    assert 'method="GET",route="/data/<record_id>",status="404"} 1.0' in text
    assert 'route="unmatched",status="404"' in text
    assert 'duration_seconds_bucket{le="0.025",method="POST",route="/data",status="201"} 1.0' in text
    assert "http_requests_in_flight 0.0" in text
    assert 'data_ingest_build_info{python="' in text


def test_mongodb_command_metrics(app):
    from datetime import timedelta

    from pymongo import monitoring

    from service.metrics import CommandMetrics
    listener = CommandMetrics(app.extensions["metrics"])
    common = dict(request_id=1, operation_id=1, connection_id=("127.0.0.1", 27017))
    listener.started(monitoring.CommandStartedEvent({"find": "records"}, "ingest", **common))
    took = timedelta(microseconds=1500)
    listener.succeeded(monitoring.CommandSucceededEvent(took, {"ok": 1}, "find", **common))
    listener.failed(monitoring.CommandFailedEvent(took, {"ok": 0}, "insert", **common))
    text = generate_latest(app.extensions["metrics"].registry).decode()
    assert 'mongodb_command_duration_seconds_count{command="find"} 1.0' in text
    assert 'mongodb_command_errors_total{command="insert"} 1.0' in text
