"""The deployment disturbed the ways production disturbs it, under steady reads and keyed writes
through the Service; every acknowledged write is read back afterwards."""
from __future__ import annotations

import json
import time

import pytest

from tests.integration import harness
from tests.integration.test_shutdown import Hammer, SlowPost

from .cluster import (EDGE_PORT, NAMESPACE, Load, api_pods, get_json, hpa, kubectl, ready_pods,
                      settled)

SETTLE_S = 240
PROBE_NAMESPACE = "data-ingest-probe"


@pytest.fixture(autouse=True)
def settled_deployment():
    """Each scenario starts from a deployment at rest: the pods the HPA wants, all ready."""
    assert harness.wait_until(settled, SETTLE_S, interval=2), "the deployment did not settle"


def pod_names() -> set[str]:
    """The names of the API pods, terminating ones included."""
    return {pod["metadata"]["name"] for pod in api_pods()}


def images_running() -> set[str]:
    """The API images of every pod, terminating ones included."""
    return {c["image"] for pod in api_pods() for c in pod["spec"]["containers"] if c["name"] == "api"}


def test_rolling_update_to_a_new_tag_fails_no_request_and_loses_no_write(base_url, image, rollout_image):
    with Load(base_url) as load:
        time.sleep(3)
        started = time.monotonic()
        kubectl("set", "image", "deployment/data-ingest", f"api={rollout_image}")
        kubectl("rollout", "status", "deployment/data-ingest", "--timeout=300s")
        # Old pods drain after the rollout reports done: the load lasts until they are gone.
        assert harness.wait_until(lambda: images_running() == {rollout_image}, 120, interval=1)
        rollout_s = time.monotonic() - started
        time.sleep(3)
    missing = load.missing()
    harness.report("rolling update", rollout_s=f"{rollout_s:.0f}", missing_writes=len(missing),
                   **load.figures())
    assert load.failures == []
    assert missing == []


def test_a_pod_deleted_without_grace_loses_no_acknowledged_write(base_url):
    with Load(base_url) as load:
        time.sleep(3)
        victim = ready_pods()[0]["metadata"]["name"]
        kubectl("delete", "pod", victim, "--grace-period=0", "--force", "--wait=false")
        assert harness.wait_until(lambda: victim not in pod_names(), 120, 1)
        assert harness.wait_until(settled, SETTLE_S, interval=2)
        time.sleep(3)
    missing = load.missing()
    harness.report("pod deleted without grace", missing_writes=len(missing), **load.figures())
    assert missing == []


def evict(pod: str):
    """Ask the eviction API, which enforces PodDisruptionBudgets, to remove a pod."""
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": NAMESPACE}}
    return kubectl("create", "--raw", f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}/eviction", "-f", "-",
                   namespace=None, check=False, stdin=json.dumps(body))


def test_an_eviction_beyond_the_disruption_budget_is_refused(base_url):
    with Load(base_url) as load:
        first, second = [pod["metadata"]["name"] for pod in ready_pods()[:2]]
        allowed = evict(first)
        refused = evict(second)
        assert harness.wait_until(settled, SETTLE_S, interval=2)
    missing = load.missing()
    harness.report("eviction beyond the PDB", refused=refused.stderr.strip(), missing_writes=len(missing),
                   **load.figures())
    assert allowed.returncode == 0, allowed.stderr
    assert refused.returncode != 0
    assert "disruption budget" in refused.stderr
    assert missing == []


# Tries for 20 s: a new pod's address reaches the policy enforcer's sets a moment after it starts.
PROBE = """
import sys, time, urllib.request
for attempt in range(20):
    try:
        print(urllib.request.urlopen(sys.argv[1], timeout=2).status)
        break
    except OSError as exc:
        error = exc
        time.sleep(1)
else:
    sys.exit(f"no answer in 20 attempts: {error}")
"""


def probe_pod(name: str, image: str, labels: str, url: str) -> tuple[str, str]:
    """Run a pod in another namespace that GETs url; its phase and its log."""
    kubectl("run", name, f"--image={image}", "--image-pull-policy=IfNotPresent", "--restart=Never",
            f"--labels={labels}", "--command", "--", "python", "-c", PROBE, url, namespace=PROBE_NAMESPACE)
    done = harness.wait_until(lambda: get_json("pod", name, namespace=PROBE_NAMESPACE)["status"]["phase"]
                              in ("Succeeded", "Failed"), 120, interval=1)
    assert done, f"probe pod {name} did not finish"
    phase = get_json("pod", name, namespace=PROBE_NAMESPACE)["status"]["phase"]
    return phase, kubectl("logs", name, namespace=PROBE_NAMESPACE).stdout.strip()


@pytest.fixture
def probe_namespace():
    """A namespace of its own, without policies, for client pods; deleted afterwards."""
    kubectl("create", "namespace", PROBE_NAMESPACE, namespace=None)
    yield PROBE_NAMESPACE
    kubectl("delete", "namespace", PROBE_NAMESPACE, "--wait=false", namespace=None)


def test_only_pods_labelled_as_clients_reach_the_api(image, probe_namespace):
    url = f"http://data-ingest.{NAMESPACE}.svc.cluster.local:8000/healthz"
    client = probe_pod("client", image, "data-ingest/client=true", url)
    stranger = probe_pod("stranger", image, "app=stranger", url)
    harness.report("NetworkPolicy ingress", labelled=client, unlabelled=stranger)
    assert client[0] == "Succeeded", client
    assert stranger[0] == "Failed", stranger


EGRESS = """
import json, os, socket, sys
from urllib.parse import urlsplit

def reaches(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        return type(exc).__name__
    return True

database = urlsplit(os.environ["MONGODB_URI"])
print(json.dumps({
    "dns": bool(socket.getaddrinfo("kubernetes.default.svc.cluster.local", 443)),
    "database": reaches(database.hostname, database.port or 27017),
    "kubernetes API": reaches("kubernetes.default.svc.cluster.local", 443),
    "CoreDNS health port": reaches(sys.argv[1], 8080),
}))
"""


def test_the_api_pod_reaches_only_dns_and_the_database():
    dns_pods = get_json("pods", "-l", "k8s-app=kube-dns", namespace="kube-system")["items"]
    coredns = dns_pods[0]["status"]["podIP"]
    pod = ready_pods()[0]["metadata"]["name"]
    reached = json.loads(kubectl("exec", pod, "-c", "api", "--", "python", "-c", EGRESS, coredns).stdout)
    harness.report("NetworkPolicy egress of the API pod", **reached)
    assert reached["dns"] is True
    assert reached["database"] is True
    assert reached["kubernetes API"] is not True
    assert reached["CoreDNS health port"] is not True


def test_a_stopping_pod_drains_the_requests_it_holds(base_url):
    """Deleted with its grace period: preStop, then nginx's and gunicorn's graceful stops. Slow
    uploads sent straight to the terminating pod finish after the edge's stop signal."""
    victim = ready_pods()[0]
    name, pod_ip = victim["metadata"]["name"], victim["status"]["podIP"]
    grace_s = victim["spec"]["terminationGracePeriodSeconds"]
    with Load(base_url) as load, Hammer(f"http://{pod_ip}:{EDGE_PORT}", load.source, threads=2) as direct:
        started = time.monotonic()
        kubectl("delete", "pod", name, "--wait=false")
        time.sleep(5)  # the pod is terminating; its edge still accepts until its preStop ends (10 s)
        slow = [SlowPost(EDGE_PORT, {"source": load.source, "payload": {"slow": n}}, host=pod_ip)
                for n in range(3)]
        time.sleep(7)  # past the edge's stop signal, within nginx's 10 s between two body reads
        slow_results = [request.finish() for request in slow]
        gone = harness.wait_until(lambda: name not in pod_names(), grace_s + 30, 1)
        stopped_s = time.monotonic() - started
        assert harness.wait_until(settled, SETTLE_S, interval=2)
    acknowledged = [body["id"] for status, body in direct.results + slow_results if status == 201]
    load.acknowledged += acknowledged
    missing = load.missing()
    harness.report("pod stopped with requests in flight", slow_statuses=[s for s, _ in slow_results],
                   direct_acknowledged=len(acknowledged), stopped_s=f"{stopped_s:.0f}", grace_s=grace_s,
                   missing_writes=len(missing), **load.figures())
    assert gone and stopped_s < grace_s, "the pod was killed at the end of its grace period, not drained"
    assert [status for status, _ in slow_results] == [201] * len(slow)
    assert {status for status, _ in direct.results} <= {201, None}
    assert load.failures == []
    assert missing == []


def replicas() -> int:
    """The pods the HPA has now."""
    return hpa()["status"].get("currentReplicas", 0)


def test_the_hpa_scales_out_under_cpu_load_and_back_in_after_it(base_url):
    spec = hpa()["spec"]
    minimum, window_s = spec["minReplicas"], spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"]
    with Load(base_url) as load:
        started = time.monotonic()
        with Load(base_url, readers=6, writers=2, pause_s=0, source=load.source) as burst:
            scaled_out = harness.wait_until(lambda: replicas() > minimum, 180, interval=2)
            out_s = time.monotonic() - started
            peak = replicas()
        burst_over = time.monotonic()
        at_minimum = harness.wait_until(lambda: replicas() == minimum, window_s + 150, interval=2)
        scaled_in = at_minimum and harness.wait_until(settled, SETTLE_S, interval=2)
        in_s = time.monotonic() - burst_over
    load.acknowledged += burst.acknowledged
    missing = load.missing()
    harness.report("HPA", scale_out_s=f"{out_s:.0f}", peak_replicas=peak, scale_in_s=f"{in_s:.0f}",
                   window_s=window_s, missing_writes=len(missing), burst_requests=burst.requests,
                   burst_failed=len(burst.failures), **load.figures())
    assert scaled_out, "no scale-out within 3 minutes of CPU load"
    assert scaled_in, f"not back to {minimum} pods within the {window_s} s window plus 150 s of metric lag"
    assert load.failures == []
    assert missing == []
