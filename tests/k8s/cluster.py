"""The deployment under test, through kubectl, and the load that runs while it is disturbed."""
from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

NAMESPACE = os.environ.get("K8S_NAMESPACE", "data-ingest")
API_SELECTOR = "app.kubernetes.io/name=data-ingest,app.kubernetes.io/component=api"
EDGE_PORT = 8080


def kubectl(*args: str, namespace: str | None = NAMESPACE, timeout: float = 300,
            check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
    """kubectl against KUBECONFIG, in the deployment's namespace unless told otherwise."""
    command = ["kubectl", *(["-n", namespace] if namespace else []), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, input=stdin)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stderr}")
    return result


def get_json(*args: str, namespace: str | None = NAMESPACE) -> dict:
    """An object (or a list) as JSON."""
    return json.loads(kubectl("get", *args, "-o", "json", namespace=namespace).stdout)


def api_pods() -> list[dict]:
    """Every pod of the API, terminating ones included."""
    return get_json("pods", "-l", API_SELECTOR)["items"]


def is_ready(pod: dict) -> bool:
    """Running, every container ready, not being deleted."""
    conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
    return "deletionTimestamp" not in pod["metadata"] and conditions.get("Ready") == "True"


def ready_pods() -> list[dict]:
    """The API pods that the Service sends requests to."""
    return [pod for pod in api_pods() if is_ready(pod)]


def hpa() -> dict:
    """The HorizontalPodAutoscaler of the API."""
    return get_json("hpa", "data-ingest")


def settled() -> bool:
    """As many ready pods as the HPA wants, and no other pod (none starting, none terminating)."""
    pods = api_pods()
    wanted = hpa()["status"].get("desiredReplicas", 0)
    return len(pods) == wanted and all(is_ready(pod) for pod in pods)


@dataclass
class Load:
    """Steady reads and keyed writes through the Service, each on a new connection (so the
    Service balances every request), from a few threads, until the block ends."""

    base_url: str
    readers: int = 1
    writers: int = 1
    pause_s: float = 0.1
    source: str = field(default_factory=lambda: f"k8s-{uuid.uuid4().hex[:12]}")
    acknowledged: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    requests: int = 0

    def __post_init__(self):
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._actions = [self._read] * self.readers + [self._write] * self.writers
        self._pool = ThreadPoolExecutor(len(self._actions))

    def _send(self, method: str, path: str, **kwargs) -> requests.Response | None:
        try:
            headers = {"Connection": "close", **kwargs.pop("headers", {})}
            response = requests.request(method, self.base_url + path, timeout=15, headers=headers, **kwargs)
        except requests.RequestException as exc:
            outcome, response = f"{method} {type(exc).__name__}", None
        else:
            outcome = None if response.status_code < 300 else f"{method} {response.status_code}"
        with self._lock:
            self.requests += 1
            if outcome:
                self.failures.append(outcome)
        return response if outcome is None else None

    def _read(self) -> None:
        self._send("GET", "/data", params={"source": self.source, "limit": 10})

    def _write(self) -> None:
        response = self._send("POST", "/data", json={"source": self.source, "payload": {"at": time.time()}},
                              headers={"Idempotency-Key": uuid.uuid4().hex})
        if response is not None:
            with self._lock:
                self.acknowledged.append(response.json()["id"])

    def _loop(self, action) -> None:
        while not self._stop.is_set():
            action()
            time.sleep(self.pause_s)

    def __enter__(self) -> "Load":
        self._running = [self._pool.submit(self._loop, action) for action in self._actions]
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._pool.shutdown(wait=True)
        for running in self._running:
            running.result()  # a load thread that broke fails the test

    def missing(self) -> list[str]:
        """Acknowledged writes that cannot be read back now."""
        with requests.Session() as session:
            return [record_id for record_id in self.acknowledged
                    if session.get(f"{self.base_url}/data/{record_id}", timeout=15).status_code != 200]

    def figures(self) -> dict:
        """What a report says about the load."""
        return {"requests": self.requests, "failed": len(self.failures),
                "acknowledged_writes": len(self.acknowledged), "failures": sorted(set(self.failures))}
