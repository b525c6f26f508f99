"""The service image run by a container engine, as compose and Kubernetes run it.

`scripts/test-container.sh` builds the image and sets:
  CONTAINER_IMAGE          the image under test
  CONTAINER_EDGE_IMAGE     the nginx image in front of it (pinned, or a Debian stand-in)
  CONTAINER_ENGINE         the engine command with its global options, e.g. "docker" or
                           "podman --runtime /usr/sbin/runc --cgroup-manager=cgroupfs"
  CONTAINER_RUN_OPTIONS    extra `run` options this engine needs (ulimits, a cleanup label)
  CONTAINER_COMPOSE        the compose command for that engine, e.g. "docker compose"
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess

from .harness import CURSOR_SECRET, REPO, Edge, answers, free_port, unique, wait_until

# compose.yaml's `read_only`, `tmpfs`, `cap_drop`, `security_opt` and the Deployment's
# securityContext, as run options; the user is the image's own (USER 10001:10001).
HARDENING = ("--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
             "--security-opt", "no-new-privileges")
ENGINE_TIMEOUT_S = 60


def configured() -> bool:
    """True when scripts/test-container.sh has built an image to test."""
    return bool(os.environ.get("CONTAINER_IMAGE"))


def engine(*args: str, timeout: float = ENGINE_TIMEOUT_S, check: bool = True) -> subprocess.CompletedProcess:
    """Run the container engine; fail with its output unless `check` is off."""
    command = shlex.split(os.environ["CONTAINER_ENGINE"]) + list(args)
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{shlex.join(command)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


def image() -> str:
    """The image under test."""
    return os.environ["CONTAINER_IMAGE"]


def image_inspect() -> dict:
    """The engine's description of the image: its configuration, size, labels."""
    return json.loads(engine("image", "inspect", image()).stdout)[0]


def image_healthcheck() -> dict:
    """The image's HEALTHCHECK: podman reports it beside the configuration, docker inside it."""
    described = image_inspect()
    return described.get("Healthcheck") or described["Config"].get("Healthcheck") or {}


def run_options(network: str = "host", **env: str) -> list[str]:
    """`run` options shared by every container the suite starts (with the run's cursor secret,
    which every deployment must set, as every pod of one shares it)."""
    options = [*HARDENING, "--network", network, *shlex.split(os.environ.get("CONTAINER_RUN_OPTIONS", ""))]
    for name, value in {"CURSOR_SECRET": CURSOR_SECRET, **env}.items():
        options += ["-e", f"{name}={value}"]
    return options


def run_once(*command: str, network: str = "host", **env: str) -> subprocess.CompletedProcess:
    """A one-shot container (init-db, a health check with no server): its result."""
    return engine("run", "--rm", *run_options(network, **env), image(), *command, check=False)


def python_in(name: str, code: str) -> str:
    """Run Python in a running container, as the image's user (the image has no shell tools to rely on)."""
    result = engine("exec", name, "python", "-c", code, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def engine_made_changes() -> set[str]:
    """What the engine itself changes in a container's root filesystem (the mount points
    of /etc/hosts, /etc/resolv.conf...): the `diff` of a container of the image that runs nothing."""
    name = unique("data-ingest-test-idle")
    engine("run", "--name", name, *run_options(), image(), "python", "-c", "pass")
    try:
        return set(engine("diff", name).stdout.splitlines())
    finally:
        engine("rm", "--force", name, check=False)


class ServiceContainer:
    """The API in a container on the host network (the database listens on the host's
    loopback only), on free loopback ports; or, with network="none", alone in a network
    namespace of its own on the image's default ports."""

    def __init__(self, network: str = "host", **env: str):
        self.name = unique("data-ingest-test")
        self.network = network
        self.port, self.metrics_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        self.env = env
        if network == "host":
            self.env = {"BIND": f"127.0.0.1:{self.port}", "METRICS_PORT": str(self.metrics_port), **env}

    def run(self) -> "ServiceContainer":
        """Start detached, without waiting."""
        engine("run", "--detach", "--name", self.name, *run_options(self.network, **self.env), image())
        return self

    def start(self, timeout: float = 60) -> "ServiceContainer":
        """Start detached on the host network and wait until /healthz answers."""
        self.run()
        if not wait_until(lambda: self.running() and answers(f"{self.url}/healthz"), timeout):
            raise RuntimeError(f"the container did not become healthy:\n{self.logs()}")
        return self

    def running(self) -> bool:
        """True while the container's main process runs."""
        state = engine("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return state.stdout.strip() == "true"

    def exec(self, *command: str) -> subprocess.CompletedProcess:
        """Run a command inside the running container, as the image's user."""
        return engine("exec", self.name, *command, check=False)

    def python(self, code: str) -> str:
        """Run Python inside the container; its output."""
        return python_in(self.name, code)

    def signal(self, name: str) -> None:
        """Send a signal to the container's main process (gunicorn, PID 1)."""
        engine("kill", "--signal", name, self.name)

    def wait(self, timeout: float) -> int:
        """Wait for the container to exit; its exit code."""
        return int(engine("wait", self.name, timeout=timeout).stdout.split()[0])

    def diff(self) -> list[str]:
        """Paths the container changed in its root filesystem (tmpfs mounts excluded)."""
        return engine("diff", self.name).stdout.splitlines()

    def logs(self) -> str:
        """Everything the container printed."""
        result = engine("logs", self.name, check=False)
        return result.stdout + result.stderr

    def remove(self) -> None:
        """Stop as compose does (SIGTERM, SIGKILL after a grace period) and delete the container."""
        engine("stop", "-t", "30", self.name, check=False, timeout=90)
        engine("rm", "--force", self.name, check=False)


class EdgeContainer:
    """The edge image with deploy/nginx/nginx.conf (its two addresses rewritten, as for the
    suite's own nginx), on the host network in front of a loopback port, hardened as the
    pod's sidecar: read-only root, /tmp a tmpfs, no capabilities, a non-root user."""

    CONF = "/etc/nginx/edge/nginx.conf"

    def __init__(self, workdir, upstream_port: int):
        self.name = unique("data-ingest-test-edge")
        edge = Edge(workdir, upstream_port)
        self.conf, self.port, self.url = edge.workdir / "nginx.conf", edge.port, edge.url
        self.conf.chmod(0o644)

    def start(self, timeout: float = 30) -> "EdgeContainer":
        """Start detached and wait until a request reaches the app through it."""
        options = [*HARDENING, "--network", "host", "--user", "10002:10001",
                   *shlex.split(os.environ.get("CONTAINER_RUN_OPTIONS", "")),
                   "-v", f"{self.conf}:{self.CONF}:ro"]
        engine("run", "--detach", "--name", self.name, *options, os.environ["CONTAINER_EDGE_IMAGE"],
               "nginx", "-p", "/tmp/", "-e", "stderr", "-c", self.CONF, "-g", "daemon off;")
        if not wait_until(lambda: answers(f"{self.url}/healthz"), timeout):
            logs = engine("logs", self.name, check=False)
            raise RuntimeError(f"the edge did not answer:\n{logs.stdout}{logs.stderr}")
        return self

    def remove(self) -> None:
        """Stop as compose does (SIGQUIT, the image's stop signal) and delete the container."""
        engine("stop", "-t", "30", self.name, check=False, timeout=90)
        engine("rm", "--force", self.name, check=False)


class Compose:
    """compose.yaml with compose.test.yaml over it: the project's own services on the image
    under test, on the host network, against MONGODB_URI, under a project name of their own."""

    FILES = ("compose.yaml", "compose.test.yaml")

    def __init__(self, **env: str):
        self.project = unique("data-ingest-test")
        self.env = {**os.environ, "CONTAINER_IMAGE": image(), **env}

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run a compose command on the project; its result, checked by the caller."""
        command = shlex.split(os.environ["CONTAINER_COMPOSE"]) + ["--project-name", self.project]
        for path in self.FILES:
            command += ["--file", path]
        return subprocess.run(command + list(args), cwd=REPO, env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def container_of(self, service: str) -> str:
        """The id of the service's container."""
        found = engine("ps", "--quiet", "--filter", f"label=com.docker.compose.project={self.project}",
                       "--filter", f"label=com.docker.compose.service={service}").stdout.split()
        assert len(found) == 1, f"one container of {service} expected, found {found}"
        return found[0]
