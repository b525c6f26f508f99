"""Metrics, logs, request ids and API keys on the real server: gunicorn with two workers."""
from __future__ import annotations

import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from service.auth import digest
from tests.factories import bearer

from . import harness

WRITER, READER = "writer-key-0123456789abcdef", "reader-key-0123456789abcdef"


@pytest.fixture
def secured(start_service, mongodb_uri, database_name, tmp_path):
    """A server with API keys, two workers, and a metrics port of its own."""
    keys = tmp_path / "api-keys"
    keys.write_text(f"writer {digest(WRITER).hex()} write\nreader {digest(READER).hex()} read\n")
    return start_service(MONGODB_URI=mongodb_uri, MONGODB_DATABASE=database_name,
                         API_KEYS_FILE=str(keys))


def post_on_fresh_connections(server, count: int, source: str) -> list[int]:
    """POST on a new connection each time, so that both workers take requests."""
    def one(i: int) -> int:
        return requests.post(f"{server.url}/data", json={"source": source, "payload": {"i": i}},
                             headers={**bearer(WRITER), "Connection": "close"}, timeout=15).status_code
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def scrape(server) -> str:
    return requests.get(f"http://127.0.0.1:{server.env['METRICS_PORT']}/metrics", timeout=5).text


def test_metrics_are_merged_across_workers(secured, source):
    statuses = post_on_fresh_connections(secured, 120, source)
    assert statuses == [201] * 120
    writers = {path.name for path in (secured.workdir / "prometheus").glob("counter_*.db")}
    assert len(writers) >= 2, f"one worker took every request: {writers}"
    text = scrape(secured)
    assert 'http_requests_total{method="POST",route="/data",status="201"} 120.0' in text
    count = r'http_request_duration_seconds_count\{method="POST",route="/data",status="201"\} 120\.0'
    assert re.search(count, text)
    assert re.search(r'mongodb_command_duration_seconds_count\{command="insert"\} \d+', text)
    assert "data_ingest_build_info{" in text
    assert requests.get(f"{secured.url}/metrics", timeout=5).status_code == 404  # not on the API port


def test_api_keys_and_scopes_over_http(secured, source):
    record = {"source": source, "payload": {}}
    missing = requests.get(f"{secured.url}/data", timeout=5)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert requests.post(f"{secured.url}/data", json=record, headers=bearer(READER),
                         timeout=5).status_code == 403
    assert requests.post(f"{secured.url}/data", json=record, headers=bearer(WRITER),
                         timeout=5).status_code == 201
    assert requests.get(f"{secured.url}/data", headers=bearer(READER), timeout=5).status_code == 200
    assert requests.get(f"{secured.url}/readyz", timeout=5).status_code == 200


def test_log_lines_carry_the_request_id_and_no_payload(secured, source):
    marker = harness.unique("secret-value")
    response = requests.post(f"{secured.url}/data", json={"source": source, "payload": {marker: marker}},
                             headers={**bearer(WRITER), "X-Request-ID": "trace-42"}, timeout=5)
    assert response.headers["X-Request-ID"] == "trace-42"
    error = requests.get(f"{secured.url}/data/nope", headers={**bearer(READER), "X-Request-ID": "trace-43"},
                         timeout=5)
    assert error.json()["request_id"] == "trace-43"
    assert harness.wait_until(lambda: "trace-43" in secured.log_path.read_text(), 5)
    log = secured.log_path.read_text()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("request_id") == "trace-42"]
    assert access and access[-1]["route"] == "/data" and access[-1]["status"] == 201
    assert {"time", "level", "method", "duration_ms", "client"} <= set(access[-1])
    assert any(line["logger"] == "gunicorn.error" for line in lines)
    assert marker not in log


def test_a_bad_api_keys_file_stops_gunicorn_once_with_one_line(tmp_path, mongodb_uri):
    """Not a worker exiting 1 and respawned forever: the master stops, naming the setting."""
    server = harness.ServiceProcess(tmp_path, MONGODB_URI=mongodb_uri,
                                    API_KEYS_FILE=str(tmp_path / "missing"))
    command = [str(harness.VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py", "service:create_app()"]
    run = subprocess.run(command, cwd=harness.REPO, env=server.env, capture_output=True, text=True,
                         timeout=30)
    lines = (run.stdout + run.stderr).splitlines()
    assert run.returncode != 0
    assert [line for line in lines if "API_KEYS_FILE" in line] == [
        "configuration error: API_KEYS_FILE cannot be read: No such file or directory"]
    assert not any("Booting worker" in line for line in lines)
