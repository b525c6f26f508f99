"""The service image, run as compose and Kubernetes run it (`make test-container`).

The black-box contract tests run against the same container (see conftest.base_url);
these check what only the image decides: its user, its health check, that it needs
no writable root filesystem, and that SIGTERM to PID 1 drains in-flight requests.
"""
from __future__ import annotations

import json
import time

import pytest
import requests
from pymongo import MongoClient

from . import container, harness
from .test_shutdown import SLOW_REQUESTS, Hammer, SlowPost, refuses_connections

pytestmark = pytest.mark.container

USER = 10001
# The image's default (GUNICORN_GRACEFUL_TIMEOUT) and the value deploy/k8s/base/configmap.yaml sets.
GRACEFUL_TIMEOUT_S = 25

PROCESS_STATUS = """
import json, os
found = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/status") as status:
            fields = dict(line.rstrip("\\n").split(":\\t", 1) for line in status if ":\\t" in line)
    except FileNotFoundError:  # a process that ended while we looked
        continue
    found[pid] = {k: fields[k] for k in ("Name", "Uid", "Gid", "CapEff", "CapPrm", "NoNewPrivs")}
print(json.dumps(found))
"""


def assert_unprivileged_gunicorn(container_name: str) -> None:
    """gunicorn is PID 1 with its workers; every process is 10001 with no capability to gain."""
    processes = json.loads(container.python_in(container_name, PROCESS_STATUS))
    gunicorn = {pid: p for pid, p in processes.items() if p["Name"].startswith("gunicorn")}
    assert "1" in gunicorn, f"gunicorn must be PID 1 to receive SIGTERM: {processes}"
    assert len(gunicorn) >= 3, f"master and two workers expected: {gunicorn}"
    for pid, status in processes.items():
        assert status["Uid"].split() == [str(USER)] * 4, (pid, status)
        assert status["Gid"].split() == [str(USER)] * 4, (pid, status)
        assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0, (pid, status)
        assert status["NoNewPrivs"] == "1", (pid, status)


def assert_read_only_root(container_name: str) -> None:
    """Writing to /app fails with EROFS; /tmp is writable."""
    probe = container.python_in(
        container_name,
        "import os, tempfile\n"
        "try:\n    open('/app/probe', 'w')\nexcept OSError as exc:\n    print(exc.errno)\n"
        "with tempfile.NamedTemporaryFile(dir='/tmp'):\n    print('tmp ok')\n")
    assert probe.splitlines() == ["30", "tmp ok"], f"expected EROFS (30) on /app and a writable /tmp: {probe}"


def test_every_process_runs_as_10001_without_capabilities(service_container):
    assert_unprivileged_gunicorn(service_container.name)
    assert container.image_inspect()["Config"]["User"] == f"{USER}:{USER}"


def test_image_health_check_passes_when_serving_and_fails_without_a_server():
    health = container.image_healthcheck()
    kind, *command = health.get("Test") or ["NONE"]
    assert kind == "CMD", f"the image must define an exec-form HEALTHCHECK: {health}"
    start_period_s = health["StartPeriod"] / 1e9

    # Alone in a network namespace, on the image's default BIND (the port the check
    # probes), the check runs as the engine runs it: inside the container.
    serving = container.ServiceContainer(network="none", MONGODB_URI="memory://").run()
    try:
        passed = harness.wait_until(lambda: serving.exec(*command).returncode == 0, start_period_s)
        logs = serving.logs()
    finally:
        serving.remove()
    assert passed, f"the health check did not pass within the start period ({start_period_s:.0f} s):\n{logs}"
    failing = container.run_once(*command, network="none")
    assert failing.returncode != 0, "the health check passed with no server"


def test_root_filesystem_is_read_only_and_nothing_is_written_outside_tmp(service_container, source):
    api = harness.Client(service_container.url)
    created = api.create(source, {"n": 1})
    assert api.get(f"/data/{created['id']}").status_code == 200
    assert api.get("/docs").status_code == 200
    assert "http_requests_total" in requests.get(service_container.metrics_url, timeout=5).text

    assert_read_only_root(service_container.name)
    written = set(service_container.diff()) - container.engine_made_changes()
    assert not written, f"the service changed its root filesystem: {sorted(written)}"
    assert "Read-only file system" not in service_container.logs()


def test_init_db_from_the_image_created_the_indexes_and_is_idempotent(
        service_container, mongodb_uri, database_name):
    again = container.run_once("flask", "--app", "service", "init-db",
                               MONGODB_URI=mongodb_uri, MONGODB_DATABASE=database_name)
    assert again.returncode == 0, again.stderr
    assert "indexes ready" in again.stdout
    with MongoClient(mongodb_uri, serverSelectionTimeoutMS=5000) as client:
        indexes = client[database_name]["records"].index_information()
    assert any(spec["key"] == [("source", 1), ("_id", -1)] for spec in indexes.values()), indexes


def test_sigterm_drains_in_flight_requests_and_exits_within_the_grace_period(service_container, mongodb_uri,
                                                                             database_name):
    stopping = container.ServiceContainer(MONGODB_URI=mongodb_uri, MONGODB_DATABASE=database_name).start()
    try:
        source = harness.unique("container-shutdown")
        with Hammer(stopping.url, source) as hammer:
            time.sleep(0.5)
            slow = [SlowPost(stopping.port, {"source": source, "payload": {"n": n}})
                    for n in range(SLOW_REQUESTS)]
            time.sleep(0.3)  # let the workers pick them up
            signalled = time.monotonic()
            stopping.signal("TERM")
            time.sleep(1)  # in-flight bodies are still incomplete a second after SIGTERM
            slow_results = [request.finish() for request in slow]
            exit_code = stopping.wait(GRACEFUL_TIMEOUT_S + 15)
            shutdown_s = time.monotonic() - signalled
        logs = stopping.logs()
    finally:
        stopping.remove()
    assert exit_code == 0, logs[-4000:]
    assert shutdown_s < GRACEFUL_TIMEOUT_S, f"exited after {shutdown_s:.1f} s: killed, not drained"
    assert [status for status, _ in slow_results] == [201] * SLOW_REQUESTS
    assert refuses_connections(stopping.port)

    statuses = [status for status, _ in hammer.results]
    assert set(statuses) <= {201, None}, f"only 201 or a refused connection, got {set(statuses)}"
    acknowledged = {body["id"] for status, body in hammer.results + slow_results if status == 201}
    # Read back through the suite's container: the stopped one cannot answer any more.
    stored = {item["id"] for item in harness.Client(service_container.url).walk(limit=1000, source=source)}
    assert acknowledged <= stored
    harness.report("container shutdown (SIGTERM to PID 1 under load)", slow_in_flight=SLOW_REQUESTS,
                   acknowledged=len(acknowledged), stored=len(stored), refused=statuses.count(None),
                   shutdown_s=f"{shutdown_s:.2f}", graceful_timeout_s=GRACEFUL_TIMEOUT_S)


def test_compose_runs_init_db_then_the_api_with_its_hardening(mongodb_uri, database_name, source):
    port, metrics_port = harness.free_port(), harness.free_port()
    compose = container.Compose(MONGODB_URI=mongodb_uri, MONGODB_DATABASE=database_name,
                                API_PORT=str(port), METRICS_PORT=str(metrics_port))
    try:
        init_db = compose("run", "--rm", "-T", "init-db")
        assert init_db.returncode == 0 and "indexes ready" in init_db.stdout, init_db.stdout + init_db.stderr
        up = compose("up", "--detach", "--no-deps", "api")
        assert up.returncode == 0, up.stdout + up.stderr
        url = f"http://127.0.0.1:{port}"
        assert harness.wait_until(lambda: harness.answers(f"{url}/readyz"), 60), compose("logs", "api").stdout
        api = harness.Client(url)
        created = api.create(source, {"via": "compose"})
        assert api.get(f"/data/{created['id']}").json() == created
        metrics = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
        assert "http_requests_total" in metrics.text
        api_container = compose.container_of("api")
        assert_unprivileged_gunicorn(api_container)
        assert_read_only_root(api_container)
    finally:
        down = compose("down")
    assert down.returncode == 0, down.stdout + down.stderr


def test_the_edge_image_fronts_the_app_image_and_answers_its_refusals_in_json(service_container, tmp_path):
    edge = container.EdgeContainer(tmp_path, service_container.port).start()
    try:
        through = requests.get(f"{edge.url}/healthz", headers={"X-Request-ID": "pair-1"}, timeout=5)
        refused = requests.post(f"{edge.url}/data", data=b"x" * (2**20 + 1),
                                headers={"Content-Type": "application/json"}, timeout=10)
    finally:
        edge.remove()
    assert through.status_code == 200 and through.headers["X-Request-ID"] == "pair-1"
    assert refused.status_code == 413 and refused.json()["code"] == 413
    assert refused.headers["X-Content-Type-Options"] == "nosniff"
