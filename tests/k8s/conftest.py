"""Fixtures of the scenarios on a Kubernetes cluster: `make test-k8s` applies the deployment
(scripts/test-k8s.sh) and sets BASE_URL to the Service; without it every test is skipped."""
from __future__ import annotations

import os

import pytest

# The suite's markers (test_shutdown's helpers are imported with theirs) and its figures.
from tests.integration.conftest import pytest_configure, pytest_terminal_summary  # noqa: F401

NO_CLUSTER = ("needs the deployment on a cluster and BASE_URL pointing at its Service: "
              "`make test-k8s` (this machine's single-node cluster, and cd.yml's kind job) sets both")


def pytest_collection_modifyitems(config, items):
    """Skip every scenario when there is no deployment to disturb."""
    if not os.environ.get("BASE_URL"):
        for item in items:
            item.add_marker(pytest.mark.skip(reason=NO_CLUSTER))


@pytest.fixture(scope="session")
def base_url() -> str:
    """The Service of the deployment, as its clients reach it."""
    return os.environ["BASE_URL"].rstrip("/")


@pytest.fixture(scope="session")
def image() -> str:
    """The API image the deployment runs first (also the probes' image: it has Python)."""
    return os.environ["K8S_IMAGE"]


@pytest.fixture(scope="session")
def rollout_image() -> str:
    """The same build under a new tag, for the rolling update."""
    return os.environ["K8S_ROLLOUT_IMAGE"]
