"""Fixtures of the integration suite: the real service over HTTP against MONGODB_URI.

`scripts/integration.sh` provides MONGODB_URI (a throwaway FerretDB unless it is already
set). With BASE_URL set, tests marked `blackbox` talk to that deployment instead of a
server started here (the kind end-to-end job does this), and so do the sharding gates
(marked `sharded_only`), which need a deployment on a sharded cluster. With
CONTAINER_IMAGE set (`make test-container`), black-box tests talk to that image, run
here as compose runs it, and the tests marked `container` check the running image itself.
"""
from __future__ import annotations

import os

import pytest
from . import container, harness

CONTAINER_REASON = "needs the image built by `make test-container` (CONTAINER_IMAGE), which runs it"
SHARDED_ONLY_REASON = (
    "needs the API on a sharded MongoDB cluster, reached through mongos; runs in GitHub "
    "Actions (.github/workflows/sharded.yml on deploy/sharded-cluster; set "
    "INTEGRATION_SHARDED=1 with BASE_URL, MONGODB_URI and MONGODB_DATABASE of that deployment): "
)
SHARDED_DOCUMENTDB_REASON = (
    "needs the sharded DocumentDB engine (a Citus coordinator and two workers, FerretDB in front), "
    "which `make test-sharded` builds, starts and shards (FERRETDB_SHARDED=1): "
)
# marker -> (environment variable that enables it, reason prefix when it is off)
GATED_MARKERS = {
    "sharded_only": ("INTEGRATION_SHARDED", SHARDED_ONLY_REASON),
    "sharded_documentdb": ("FERRETDB_SHARDED", SHARDED_DOCUMENTDB_REASON),
}


def pytest_configure(config):
    """Register the suite's markers (setup.cfg configures the unit tests)."""
    for line in (
        "blackbox: pure HTTP contract test; runs against BASE_URL when it is set",
        "sharded_only(reason): needs a sharded cluster; skipped unless INTEGRATION_SHARDED=1",
        "sharded_documentdb(reason): needs the sharded DocumentDB engine; skipped unless FERRETDB_SHARDED=1",
        "fault: starts its own servers or databases to inject a failure",
        "container: checks the service image itself; runs in `make test-container`",
    ):
        config.addinivalue_line("markers", line)


def pytest_collection_modifyitems(config, items):
    """Skip the tests whose server or image is not there, saying why each needs it and where it runs."""
    for name, (variable, reason) in GATED_MARKERS.items():
        if os.environ.get(variable) == "1":
            continue
        for item in items:
            marker = item.get_closest_marker(name)
            if marker:
                item.add_marker(pytest.mark.skip(reason=reason + marker.args[0]))
    if not container.configured():
        for item in items:
            if item.get_closest_marker("container"):
                item.add_marker(pytest.mark.skip(reason=CONTAINER_REASON))


def pytest_terminal_summary(terminalreporter):
    """Print the figures the fault tests measured."""
    if harness.FIGURES:
        terminalreporter.section("fault-test figures")
        for line in harness.FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def mongodb_uri() -> str:
    """The database under test; the suite cannot run without one."""
    uri = os.environ.get("MONGODB_URI", "")
    if not uri.startswith("mongodb"):
        pytest.fail("MONGODB_URI must point to MongoDB or FerretDB: run scripts/integration.sh")
    return uri


@pytest.fixture(scope="session")
def database_name() -> str:
    """A database of this run only, so runs against a shared server never meet."""
    return os.environ.get("MONGODB_DATABASE") or harness.unique("it")


@pytest.fixture(scope="session")
def local_server(tmp_path_factory, mongodb_uri, database_name):
    """The service under gunicorn on a free loopback port, indexes created first."""
    server = harness.ServiceProcess(
        tmp_path_factory.mktemp("service"), MONGODB_URI=mongodb_uri, MONGODB_DATABASE=database_name,
    )
    server.init_db()
    server.start()
    yield server
    assert server.stop() == 0, f"gunicorn did not exit cleanly:\n{server.log_tail()}"


@pytest.fixture
def start_service(tmp_path):
    """Start extra servers with their own settings; each is shut down after the test."""
    started: list[harness.ServiceProcess] = []

    def start(init_db: bool = False, **env: str) -> harness.ServiceProcess:
        workdir = tmp_path / f"service{len(started)}"
        workdir.mkdir()
        server = harness.ServiceProcess(workdir, **env)
        if init_db:
            server.init_db()
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def start_edge(tmp_path):
    """Put nginx, configured as deployed, in front of a loopback port; stopped after the test."""
    started: list[harness.Edge] = []

    def start(upstream_port: int) -> harness.Edge:
        edge = harness.Edge(tmp_path / f"edge{len(started)}", upstream_port)
        started.append(edge)
        return edge.start()

    yield start
    for edge in started:
        edge.stop()


@pytest.fixture(scope="session")
def service_container(mongodb_uri, database_name):
    """The image under test, after running its own `init-db` as the compose job does."""
    env = {"MONGODB_URI": mongodb_uri, "MONGODB_DATABASE": database_name}
    init_db = container.run_once("flask", "--app", "service", "init-db", **env)
    assert init_db.returncode == 0, f"init-db in the image failed:\n{init_db.stdout}{init_db.stderr}"
    server = container.ServiceContainer(**env)
    try:
        yield server.start()
    finally:
        server.remove()


@pytest.fixture
def base_url(request) -> str:
    """Where the API under test answers: BASE_URL for black-box tests and sharding gates,
    the image under test for black-box tests, else the local server."""
    deployed = request.node.get_closest_marker("blackbox") or request.node.get_closest_marker("sharded_only")
    if deployed and os.environ.get("BASE_URL"):
        return os.environ["BASE_URL"].rstrip("/")
    if request.node.get_closest_marker("blackbox") and container.configured():
        return request.getfixturevalue("service_container").url
    return request.getfixturevalue("local_server").url


@pytest.fixture
def api(base_url):
    """An HTTP session bound to the API, with bounded timeouts on every call."""
    return harness.Client(base_url)


@pytest.fixture
def source() -> str:
    """A source name no other test writes to: a private slice of the collection."""
    return harness.unique("it")


@pytest.fixture(scope="session")
def records_collection(mongodb_uri, database_name, local_server):
    """Direct access to the stored documents, to check what BSON actually holds."""
    from pymongo import MongoClient

    client = MongoClient(mongodb_uri, serverSelectionTimeoutMS=5000, tz_aware=True)
    yield client[database_name][os.environ.get("MONGODB_COLLECTION", "records")]
    client.close()
