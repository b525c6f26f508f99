# Shared by scripts/test-container.sh and scripts/test-k8s.sh (sourced, not run): the
# container engine, the service image built from Containerfile, and the nginx edge image,
# each on its pinned base when it can be pulled, else on a Debian 12 stand-in made here.
#
# The caller sets RUN_ID, WORK (a scratch directory), IMAGE, LOCAL_BASE and the arrays
# ENGINE, COMPOSE, RUN_OPTIONS, BUILD_OPTIONS and REMOVE_IMAGES (every image to delete at
# its exit), and defines say and die.
# shellcheck shell=bash disable=SC2034,SC2153  # the variables are the caller's

readonly PULL_TIMEOUT_S=120
PINNED_BASE=$(sed -n 's/^FROM \([^ ]*\) AS python-pinned$/\1/p' Containerfile)
readonly PINNED_BASE
PINNED_EDGE=$(sed -n 's/^ *image: \(docker.io\/nginxinc\/[^ ]*\)$/\1/p' compose.yaml)
readonly PINNED_EDGE

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

# Stand-in bases are kept per machine: making one takes minutes and changes only with the
# Debian archive. Each is keyed by what goes into it and remade once it is a week old, so
# security updates reach it within a week.
readonly BASE_CACHE_DIR=${BASE_CACHE_DIR:-/var/cache/data-ingest-images}
readonly BASE_CACHE_DAYS=7

# debian_image IMAGE PACKAGES [--change ...]: a Debian 12 minbase with PACKAGES, made here
# with mmdebstrap from the host's mirror (or taken from the cache) and imported as IMAGE.
debian_image() {
    local image=$1 packages=$2 main security tarball
    shift 2
    main=${DEBIAN_MIRROR:-$(host_mirror debian http://deb.debian.org/debian)}
    security=$(host_mirror debian-security http://deb.debian.org/debian-security)
    tarball="$BASE_CACHE_DIR/bookworm-minbase-$(printf '%s\n' "$packages" "$main" "$security" |
        sha256sum | cut -c1-16).tar"
    if [[ -n "$(find "$tarball" -mtime -"$BASE_CACHE_DAYS" 2>/dev/null)" ]]; then
        say "making $image from $tarball (made $(date -r "$tarball" -u +%FT%TZ), kept for $BASE_CACHE_DAYS days)"
    else
        scripts/install-tools.sh mmdebstrap
        say "making $image (Debian 12 minbase with $packages) with mmdebstrap from $main, kept in $tarball"
        as_root mkdir -p "$BASE_CACHE_DIR"
        # Made beside its place and renamed: a run stopped midway leaves no half tarball to reuse.
        as_root mmdebstrap --quiet --format=tar --variant=minbase --include="$packages" \
            bookworm "$tarball.$RUN_ID" \
            "deb $main bookworm main" "deb $main bookworm-updates main" "deb $security bookworm-security main" ||
            { as_root rm -rf "$tarball.$RUN_ID"; die "mmdebstrap could not make $image from $main"; }
        as_root mv -f "$tarball.$RUN_ID" "$tarball"
    fi
    engine import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' "$@" \
        "$tarball" "$image" >/dev/null
    REMOVE_IMAGES+=("$image")
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
    BASE_USED="$LOCAL_BASE: Debian 12 minbase made here (or this week's cached one), Python 3.11, in ${BASE_SECONDS}s (NOT the pinned $PINNED_BASE)"
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
