#!/usr/bin/env bash
# `make test-k8s`: the deployment applied to a real Kubernetes cluster and disturbed there.
#
# Without K8S_IMAGE (this machine, as root): scripts/k8s.sh builds the single-node cluster
# once per machine and starts it in a scratch directory; FerretDB 2 listens on the node's
# address, behind the overlay's selector-less Service; the images are built as
# `make test-container` builds them (scripts/images.sh) and imported into the node.
# Everything started here is stopped at exit, and the machine restored.
#
# With K8S_IMAGE (cd.yml's kind job): kubectl's current cluster; K8S_OVERLAY (ci), and
# K8S_IMAGE and K8S_ROLLOUT_IMAGE (the same build under a second tag) already on its nodes.
# The Service's cluster IP and the pods' IPs must be routable from here.
#
# Then, timed: apply the overlay with the pinned kustomize; init-db (a failed Job fails at
# once) and the rollout; the HPA's ScalingActive; the black-box suite through the Service;
# the scenarios of tests/k8s (rolling update, pod deleted without grace, eviction past the
# PDB, NetworkPolicy, a stop with requests in flight, HPA out and in).
set -euo pipefail
cd "$(dirname "$0")/.."

readonly NAMESPACE=data-ingest NODE_IP=10.213.0.1 DATABASE_PORT=27017
readonly READY_TIMEOUT_S=180
readonly RUN_ID="$$"

ENGINE=()
COMPOSE=()
RUN_OPTIONS=()
BUILD_OPTIONS=()
REMOVE_IMAGES=()
CLUSTER_DIR=""

say() { echo "test-k8s: $*"; }
die() { echo "test-k8s: $*" >&2; exit 1; }

# Each phase says how long it took, as .ci/run's do.
timed() {
    local what="$1" started=$SECONDS
    shift
    "$@"
    say "$what took $((SECONDS - started)) s"
}

# --- this machine's cluster ----------------------------------------------------------------

cleanup() {
    local status=$?
    if [[ -n "$CLUSTER_DIR" ]]; then
        scripts/k8s.sh stop "$CLUSTER_DIR/cluster" || status=1
        scripts/ferretdb.sh stop "$CLUSTER_DIR/ferretdb" || status=1
        rm -rf "$CLUSTER_DIR"
    fi
    for image in "${REMOVE_IMAGES[@]}"; do
        engine rmi --force "$image" >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
    exit "$status"
}

# The service and edge images as `make test-container` builds them, tagged for the overlay
# (and again for the rolling update), saved and imported into the node's containerd.
images_for_the_node() {
    choose_engine
    choose_base
    choose_edge
    lend_ca_to_build
    build
    local tagged=("$K8S_IMAGE" "$K8S_ROLLOUT_IMAGE" localhost/data-ingest-edge:k8s)
    engine tag "$IMAGE" "$K8S_IMAGE"
    engine tag "$IMAGE" "$K8S_ROLLOUT_IMAGE"
    engine tag "$EDGE_IMAGE" localhost/data-ingest-edge:k8s
    REMOVE_IMAGES+=("${tagged[@]}")
    engine save --quiet -m -o "$WORK/images.tar" "${tagged[@]}"
    scripts/k8s.sh import "$CLUSTER_DIR/cluster" "$WORK/images.tar"
}

local_cluster() {
    ((EUID == 0)) || die "the local cluster needs root (or set K8S_IMAGE to test kubectl's cluster)"
    K8S_OVERLAY=local K8S_IMAGE=localhost/data-ingest:k8s K8S_ROLLOUT_IMAGE=localhost/data-ingest:k8s-rollout
    K8S_MONGODB_URI="mongodb://mongodb.$NAMESPACE.svc:$DATABASE_PORT/"
    readonly IMAGE="localhost/data-ingest-test:$RUN_ID" LOCAL_BASE="localhost/data-ingest-test-base:$RUN_ID"
    timed "install (the cluster's binaries, FerretDB)" install
    CLUSTER_DIR=$(mktemp -d)
    chmod a+x "$CLUSTER_DIR"  # PostgreSQL, under its own user, keeps FerretDB's data below it
    timed "cluster start" scripts/k8s.sh start "$CLUSTER_DIR/cluster"
    FERRETDB_HOST=$NODE_IP scripts/ferretdb.sh start "$CLUSTER_DIR/ferretdb" "$DATABASE_PORT"
    timed "images built and imported" images_for_the_node
    export KUBECONFIG="$CLUSTER_DIR/cluster/kubeconfig"
    PATH="${K8S_CACHE_DIR:-/var/cache/data-ingest-k8s}/bin:$PATH"
}

install() {
    scripts/k8s.sh install
    scripts/ferretdb.sh install
}

# --- any cluster ---------------------------------------------------------------------------

# The Secrets prod creates out of band; the database URI only where the overlay has none.
secrets() {
    kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
    kubectl -n "$NAMESPACE" create secret generic data-ingest-cursor --dry-run=client -o yaml \
        --from-literal=secret="$(python3 -c 'import secrets; print(secrets.token_hex(32))')" | kubectl apply -f - >/dev/null
    [[ -z "${K8S_MONGODB_URI:-}" ]] ||
        kubectl -n "$NAMESPACE" create secret generic data-ingest-mongodb --dry-run=client -o yaml \
            --from-literal=uri="$K8S_MONGODB_URI" | kubectl apply -f - >/dev/null
}

apply_to_ready() {
    scripts/install-tools.sh kustomize
    secrets
    .tools/bin/kustomize build "deploy/k8s/overlays/$K8S_OVERLAY" | kubectl apply -f - >/dev/null
    scripts/wait-jobs.sh "$NAMESPACE" app.kubernetes.io/part-of=data-ingest "$READY_TIMEOUT_S"
    kubectl -n "$NAMESPACE" rollout status deployment/data-ingest --timeout="${READY_TIMEOUT_S}s"
}

# ScalingActive=True: the HPA read the pods' CPU from the metrics API and computed a count.
hpa_reads_cpu() {
    kubectl -n "$NAMESPACE" wait --for=condition=ScalingActive --timeout="${READY_TIMEOUT_S}s" hpa/data-ingest
}

dump_state() {
    kubectl -n "$NAMESPACE" get all,networkpolicy,pdb,hpa,endpointslices -o wide || true
    kubectl -n "$NAMESPACE" get events --sort-by=.lastTimestamp | tail -n 40 || true
    kubectl -n "$NAMESPACE" logs -l app.kubernetes.io/part-of=data-ingest --all-containers --prefix \
        --tail=30 --max-log-requests=20 --ignore-errors || true
}

pytest_against_the_service() {
    BASE_URL="$BASE_URL" K8S_IMAGE="$K8S_IMAGE" K8S_ROLLOUT_IMAGE="$K8S_ROLLOUT_IMAGE" \
        .venv/bin/pytest "$@" -o addopts= -p no:cacheprovider -ra
}

WORK=$(mktemp -d)
readonly WORK
trap cleanup EXIT
# shellcheck source=scripts/images.sh
. scripts/images.sh

started=$SECONDS
if [[ -z "${K8S_IMAGE:-}" ]]; then
    local_cluster
fi
: "${K8S_OVERLAY:?}" "${K8S_IMAGE:?}" "${K8S_ROLLOUT_IMAGE:?}"
timed "apply to ready" apply_to_ready || { dump_state; exit 1; }
timed "HPA ScalingActive" hpa_reads_cpu || { dump_state; exit 1; }
BASE_URL=http://$(kubectl -n "$NAMESPACE" get service data-ingest -o jsonpath='{.spec.clusterIP}'):8000
timed "black-box suite through the Service" pytest_against_the_service tests/integration -m blackbox
timed "scenarios" pytest_against_the_service tests/k8s -v || { dump_state; exit 1; }
say "total $((SECONDS - started)) s"
