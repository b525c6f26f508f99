#!/usr/bin/env bash
# `make test-container`: build the service image and test it running, as compose and
# Kubernetes run it, against the integration server on loopback.
#
#   1. an engine: docker when its daemon answers, else podman (installed by
#      scripts/install-tools.sh when missing);
#   2. the base: the pinned python:3.12-slim of the Containerfile when it can be pulled,
#      else a Debian 12 base made here with mmdebstrap (Python 3.11) passed as BASE_IMAGE;
#   3. the edge: the pinned nginx image of compose.yaml when it can be pulled, else a
#      stand-in made the same way with Debian's nginx (the same deploy/nginx/nginx.conf);
#   4. the build, timed, and the image size;
#   5. scripts/integration.sh with CONTAINER_IMAGE set: FerretDB (unless MONGODB_URI is
#      set), `init-db` run from the image, the black-box suite against the container, and
#      the image checks of tests/integration/test_container.py;
#   6. every container and image made here is deleted, whatever happened; the stand-in
#      bases' tarballs stay in /var/cache/data-ingest-images for a week (scripts/images.sh).
#
# Environment: TEST_ENGINE=docker|podman forces an engine; CONTAINER_BUILD_CA=FILE
# lends a CA bundle to the build's pip (default: the host pip's own PIP_CERT,
# REQUESTS_CA_BUNDLE or `cert` setting, e.g. behind a TLS-intercepting proxy); never
# part of the image. DEBIAN_MIRROR overrides the host's apt mirror for the local base;
# BASE_CACHE_DIR, where its tarballs are kept.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly RUN_ID="$$"
readonly LABEL="data-ingest-test=$RUN_ID"
readonly IMAGE="localhost/data-ingest-test:$RUN_ID"
readonly LOCAL_BASE="localhost/data-ingest-test-base:$RUN_ID"
WORK=$(mktemp -d)
readonly WORK

ENGINE=()
COMPOSE=()
RUN_OPTIONS=(--label "$LABEL")
BUILD_OPTIONS=(--label "$LABEL")
REMOVE_IMAGES=()

say() {
    echo "test-container: $*"
}

die() {
    echo "test-container: $*" >&2
    exit 1
}

# shellcheck source=scripts/images.sh
. scripts/images.sh

cleanup() {
    local status=$?
    if ((${#ENGINE[@]})); then
        local containers
        mapfile -t containers < <(engine ps --all --quiet --filter "label=$LABEL" 2>/dev/null)
        ((${#containers[@]} == 0)) || engine rm --force "${containers[@]}" >/dev/null 2>&1 || true
        for image in "${REMOVE_IMAGES[@]}"; do
            engine rmi --force "$image" >/dev/null 2>&1 || true
        done
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT

started=$SECONDS
choose_engine
choose_base
choose_edge
lend_ca_to_build
build
say "image $IMAGE: $((IMAGE_BYTES / 1000000)) MB, built in ${BUILD_SECONDS}s"
tests_started=$SECONDS
# Quoted for the suite, which splits them as a shell would (shlex).
CONTAINER_IMAGE="$IMAGE" CONTAINER_EDGE_IMAGE="$EDGE_IMAGE" CONTAINER_ENGINE=$(printf '%q ' "${ENGINE[@]}") \
    CONTAINER_RUN_OPTIONS=$(printf '%q ' "${RUN_OPTIONS[@]}") CONTAINER_COMPOSE=$(printf '%q ' "${COMPOSE[@]}") \
    scripts/integration.sh -m "blackbox or container" "$@"
say "engine:  ${ENGINE[*]}"
say "base:    $BASE_USED"
say "edge:    $EDGE_USED"
say "build:   ${BUILD_SECONDS}s; image size $((IMAGE_BYTES / 1000000)) MB ($IMAGE_BYTES bytes)"
say "tests:   $((SECONDS - tests_started))s; total $((SECONDS - started))s"
