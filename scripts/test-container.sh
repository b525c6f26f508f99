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
#   6. every container and image made here is deleted, whatever happened.
#
# Environment: TEST_ENGINE=docker|podman forces an engine; CONTAINER_BUILD_CA=FILE
# lends a CA bundle to the build's pip (default: the host pip's own PIP_CERT,
# REQUESTS_CA_BUNDLE or `cert` setting, e.g. behind a TLS-intercepting proxy); never
# part of the image. DEBIAN_MIRROR overrides the host's apt mirror for the local base.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly RUN_ID="$$"
readonly LABEL="data-ingest-test=$RUN_ID"
readonly IMAGE="localhost/data-ingest-test:$RUN_ID"
readonly LOCAL_BASE="localhost/data-ingest-test-base:$RUN_ID"
readonly PULL_TIMEOUT_S=120
PINNED_BASE=$(sed -n 's/^FROM \([^ ]*\) AS python-pinned$/\1/p' Containerfile)
readonly PINNED_BASE
PINNED_EDGE=$(sed -n 's/^ *image: \(docker.io\/nginxinc\/[^ ]*\)$/\1/p' compose.yaml)
readonly PINNED_EDGE
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

as_root() {
    if ((EUID == 0)); then "$@"; else sudo "$@"; fi
}

choose_engine() {
    if [[ "${TEST_ENGINE:-}" != podman ]] && command -v docker >/dev/null && docker info >/dev/null 2>&1; then
        ENGINE=(docker)
        COMPOSE=(docker compose)
        docker compose version >/dev/null || die "docker has no compose plugin"
        return
    fi
    [[ "${TEST_ENGINE:-podman}" == podman ]] || die "TEST_ENGINE=$TEST_ENGINE: docker does not answer"
    scripts/install-tools.sh podman podman-compose
    # runc and cgroupfs work on hosts with hybrid cgroups, where crun and systemd refuse;
    # explicit ulimits because such hosts may not let a container raise the defaults.
    local globals=(--runtime "$(command -v runc)" --cgroup-manager=cgroupfs)
    local limits=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
    ENGINE=(podman "${globals[@]}")
    # --read-only-tmpfs=false: podman alone would also mount /run and /var/tmp writable;
    # docker and Kubernetes give the read-only root only the /tmp we ask for.
    RUN_OPTIONS+=("${limits[@]}" --read-only-tmpfs=false)
    COMPOSE=("$PWD/.tools/podman-compose-venv/bin/podman-compose" --in-pod false
        "--podman-args=${globals[*]}" "--podman-run-args=${RUN_OPTIONS[*]}")
    # docker format: the OCI image format has no HEALTHCHECK. No layer cache: nothing is left behind.
    BUILD_OPTIONS+=("${limits[@]}" --format docker --layers=false)
}

engine() {
    "${ENGINE[@]}" "$@"
}

# The host's Debian archive and security URIs, so a local mirror or proxy the host
# uses serves the base too; deb.debian.org otherwise.
host_mirror() {
    local suffix=$1 fallback=$2 uris
    uris=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
        2>/dev/null | sed -n -e 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\).*/\2/p' -e 's/^URIs: *//p' || true)
    grep -m1 "/$suffix/\{0,1\}\$" <<<"${uris// /$'\n'}" || echo "$fallback"
}

# debian_image IMAGE PACKAGES [--change ...]: a Debian 12 minbase with PACKAGES, made here
# with mmdebstrap from the host's mirror and imported as IMAGE.
debian_image() {
    local image=$1 packages=$2 main security
    shift 2
    main=${DEBIAN_MIRROR:-$(host_mirror debian http://deb.debian.org/debian)}
    security=$(host_mirror debian-security http://deb.debian.org/debian-security)
    scripts/install-tools.sh mmdebstrap
    say "making $image (Debian 12 minbase with $packages) with mmdebstrap from $main"
    as_root mmdebstrap --quiet --variant=minbase --include="$packages" \
        bookworm "$WORK/base.tar" \
        "deb $main bookworm main" "deb $main bookworm-updates main" "deb $security bookworm-security main"
    engine import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' "$@" \
        "$WORK/base.tar" "$image" >/dev/null
    REMOVE_IMAGES+=("$image")
    rm -f "$WORK/base.tar"
}

make_local_base() {
    local started=$SECONDS
    # python-is-python3: the Containerfile calls `python`, as the official image provides.
    debian_image "$LOCAL_BASE" python3,python3-venv,ca-certificates,python-is-python3
    BASE_SECONDS=$((SECONDS - started))
}

# The edge: the pinned nginx image of compose.yaml when it can be pulled, else a stand-in
# with Debian's nginx; either runs deploy/nginx/nginx.conf in front of the image under test.
choose_edge() {
    [[ -n "$PINNED_EDGE" ]] || die "no nginx image line in compose.yaml"
    if timeout "$PULL_TIMEOUT_S" "${ENGINE[@]}" pull -q "$PINNED_EDGE" >/dev/null 2>"$WORK/pull.log"; then
        EDGE_IMAGE=$PINNED_EDGE
        EDGE_USED="$PINNED_EDGE (pulled)"
        REMOVE_IMAGES+=("$PINNED_EDGE")
        return
    fi
    say "the pinned nginx image cannot be pulled: $(tail -n 1 "$WORK/pull.log")"
    EDGE_IMAGE="localhost/data-ingest-test-edge:$RUN_ID"
    debian_image "$EDGE_IMAGE" nginx --change 'STOPSIGNAL SIGQUIT'
    EDGE_USED="$EDGE_IMAGE: Debian 12 nginx made here (NOT the pinned $PINNED_EDGE)"
}

choose_base() {
    [[ -n "$PINNED_BASE" ]] || die "no 'FROM ... AS python-pinned' line in Containerfile"
    if engine image inspect "$PINNED_BASE" >/dev/null 2>&1; then
        BASE_USED="$PINNED_BASE (already present)"
        return
    fi
    if timeout "$PULL_TIMEOUT_S" "${ENGINE[@]}" pull -q "$PINNED_BASE" >/dev/null 2>"$WORK/pull.log"; then
        BASE_USED="$PINNED_BASE (pulled)"
        REMOVE_IMAGES+=("$PINNED_BASE")
        return
    fi
    say "the pinned base cannot be pulled: $(tail -n 1 "$WORK/pull.log")"
    make_local_base
    BUILD_OPTIONS+=(--build-arg "BASE_IMAGE=$LOCAL_BASE"
        --label "org.opencontainers.image.base.name=debian:bookworm (mmdebstrap, made by make test-container)")
    BASE_USED="$LOCAL_BASE: Debian 12 minbase made here, Python 3.11, in ${BASE_SECONDS}s (NOT the pinned $PINNED_BASE)"
}

# A CA bundle the host's pip trusts (a TLS-intercepting proxy), mounted into the build's
# RUN steps only: bind mounts are not part of any layer.
lend_ca_to_build() {
    local ca=${CONTAINER_BUILD_CA:-${PIP_CERT:-${REQUESTS_CA_BUNDLE:-}}}
    [[ -n "$ca" ]] || ca=$(.venv/bin/python -m pip config get global.cert 2>/dev/null || true)
    [[ -n "$ca" && -f "$ca" ]] || return 0
    if [[ "${ENGINE[0]}" != podman ]]; then
        say "docker build cannot mount $ca: the build's pip uses the image's own CA bundle"
        return
    fi
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$WORK/pip.conf"
    BUILD_OPTIONS+=(-v "$ca:/etc/ssl/certs/ca-certificates.crt:ro" -v "$WORK/pip.conf:/etc/pip.conf:ro")
    say "the build's pip trusts the host's CA bundle $ca (mounted, not copied)"
}

build() {
    local started=$SECONDS
    say "building $IMAGE with ${ENGINE[*]}"
    engine build "${BUILD_OPTIONS[@]}" -f Containerfile -t "$IMAGE" .
    REMOVE_IMAGES+=("$IMAGE")
    BUILD_SECONDS=$((SECONDS - started))
    IMAGE_BYTES=$(engine image inspect --format '{{.Size}}' "$IMAGE")
}

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
