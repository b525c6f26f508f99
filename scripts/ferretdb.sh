#!/usr/bin/env bash
# The local MongoDB-compatible server with real index use: FerretDB 2 (the MongoDB wire
# protocol) on PostgreSQL 15 with the DocumentDB extension, built from pinned sources.
#
#   scripts/ferretdb.sh install           apt packages, the extension and FerretDB (reused when current)
#   scripts/ferretdb.sh start DIR PORT    a cluster in DIR (created on first start), FerretDB on 127.0.0.1:PORT
#   scripts/ferretdb.sh stop DIR          stop both servers started on DIR
#   scripts/ferretdb.sh kill DIR          crash both at once (SIGKILL): recovery is the next start's job
#
# The connection string for a started server is mongodb://127.0.0.1:PORT/
# The extension's sources are the archives in DOCUMENTDB_VENDOR_DIR (default ../shared/vendor,
# beside the repository), checked against their SHA256SUMS before anything is built.
set -euo pipefail

readonly FERRETDB_VERSION=v2.7.0
readonly PG_MAJOR=15
readonly LIBBSON=mongo-c-driver-1.28.0-libbson PG_CRON=pg_cron-1.6.3 PGVECTOR=pgvector-0.8.0
readonly DOCUMENTDB=documentdb-3f80da90a9e0
ROOT=$(cd "$(dirname "$0")/.." && pwd)
readonly ROOT
readonly VENDOR_DIR="${DOCUMENTDB_VENDOR_DIR:-$ROOT/../shared/vendor}"
readonly TOOLS="$ROOT/.tools"
readonly BIN_DIR="$TOOLS/bin"
readonly FERRETDB="$BIN_DIR/ferretdb"
readonly BUILD_DIR="$TOOLS/documentdb"
readonly PG_BIN="/usr/lib/postgresql/$PG_MAJOR/bin"
readonly PG_CONFIG="$PG_BIN/pg_config"
# Beside the installed extension, not in the checkout: the extension is the machine's, so
# every checkout on it (and every CI run) reuses one build while its fingerprint matches.
readonly STAMP="/usr/share/postgresql/$PG_MAJOR/extension/documentdb.build-fingerprint"
readonly PG_USER=postgres
readonly START_TIMEOUT_S="${FERRETDB_START_TIMEOUT_S:-60}"
readonly STOP_TIMEOUT_S=20
readonly APT_PACKAGES=(
    "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" build-essential cmake pkg-config
    "postgresql-$PG_MAJOR-postgis-3" "postgresql-$PG_MAJOR-rum" libintelrdfpmath-dev libpcre2-dev libkrb5-dev systemtap-sdt-dev libicu-dev
    xz-utils
)
# Sorted pages walk the index only with the extended RUM access method and these settings;
# they apply to indexes created while they are on, so they are set before the first start.
readonly PRELOAD='pg_cron,pg_documentdb_core,pg_documentdb,pg_documentdb_extended_rum'
export GOTOOLCHAIN=local  # build with the installed Go rather than downloading another toolchain

say() { echo "ferretdb.sh: $*" >&2; }
die() { say "$*"; exit 1; }

# Build output goes to a log; only a failure shows it.
quietly() {
    "$@" >>"$BUILD_DIR/build.log" 2>&1 || { tail -n 30 "$BUILD_DIR/build.log" >&2; die "failed: $*"; }
}

usage() {
    sed -n '5,8s/^#   //p' "$0" >&2
    exit 2
}

# --- install -------------------------------------------------------------------------

# What the installed extension was built from: the archives' checksums, PostgreSQL's
# version and this script's build steps. A second install with the same stamp is a no-op.
build_fingerprint() {
    {
        cat "$VENDOR_DIR/SHA256SUMS"
        "$PG_CONFIG" --version
        sed -n '/^build_extension()/,/^}/p' "$0"
    } | sha256sum | cut -d' ' -f1
}

extension_current() {
    local lib
    lib=$("$PG_CONFIG" --pkglibdir)
    [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(build_fingerprint)" ]] &&
        [[ -f "$lib/pg_documentdb.so" && -f "$lib/pg_documentdb_extended_rum.so" ]] &&
        [[ -f "$lib/pg_cron.so" && -f "$lib/vector.so" ]]
}

check_archives() {
    [[ -f "$VENDOR_DIR/SHA256SUMS" ]] ||
        die "the DocumentDB source archives are not in $VENDOR_DIR (set DOCUMENTDB_VENDOR_DIR), or point MONGODB_URI at a MongoDB server instead"
    (cd "$VENDOR_DIR" && sha256sum --quiet -c SHA256SUMS) || die "archives in $VENDOR_DIR do not match SHA256SUMS"
}

unpack() {
    rm -rf "${BUILD_DIR:?}/$2"
    tar -xJf "$VENDOR_DIR/$1.tar.xz" -C "$BUILD_DIR"
}

# libbson static with -fPIC (Debian's 1.23 is too old); Debian's Intel decimal library,
# found by DocumentDB through a pkg-config file named intelmathlib; pg_cron 1.6.3 (Debian's
# 1.4 cannot schedule the seconds-long jobs the extension creates); pgvector; then the three
# DocumentDB modules, in order.
build_extension() {
    local jobs prefix="$BUILD_DIR/prefix" arch
    jobs=$(nproc)
    arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
    mkdir -p "$BUILD_DIR/pkgconfig"

    unpack "$LIBBSON" mongo-c-driver-1.28.0
    quietly cmake -S "$BUILD_DIR/mongo-c-driver-1.28.0" -B "$BUILD_DIR/libbson-build" -DENABLE_MONGOC=OFF \
        -DENABLE_TESTS=OFF -DENABLE_EXAMPLES=OFF -DENABLE_STATIC=ON -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_C_FLAGS=-fPIC -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib
    quietly cmake --build "$BUILD_DIR/libbson-build" -j "$jobs" --target install

    cat >"$BUILD_DIR/pkgconfig/intelmathlib.pc" <<PC
Name: intelmathlib
Description: Intel Decimal Floating-Point Math Library (Debian libintelrdfpmath-dev)
Version: 2.0
Cflags: -I/usr/include
Libs: -L/usr/lib/$arch -lbidgcc000
PC
    export PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$BUILD_DIR/pkgconfig"

    unpack "$PG_CRON" "$PG_CRON"
    quietly make -C "$BUILD_DIR/$PG_CRON" -j "$jobs" PG_CONFIG="$PG_CONFIG" install
    unpack "$PGVECTOR" "$PGVECTOR"
    quietly make -C "$BUILD_DIR/$PGVECTOR" -j "$jobs" PG_CONFIG="$PG_CONFIG" OPTFLAGS= install

    unpack "$DOCUMENTDB" documentdb
    local module
    for module in pg_documentdb_core pg_documentdb internal/pg_documentdb_extended_rum; do
        quietly make -C "$BUILD_DIR/documentdb/$module" -j "$jobs" PG_CONFIG="$PG_CONFIG" install
    done
}

install_ferretdb() {
    local version
    if [[ -x "$FERRETDB" ]]; then
        # Captured first: `--version | grep -q` can die of SIGPIPE under pipefail.
        version=$("$FERRETDB" --version 2>/dev/null || true)
        grep -q "version: $FERRETDB_VERSION\$" <<<"$version" && return
    fi
    command -v go >/dev/null || die "Go is required to build FerretDB $FERRETDB_VERSION"
    say "building FerretDB $FERRETDB_VERSION into $BIN_DIR"
    mkdir -p "$BIN_DIR"
    GOBIN="$BIN_DIR" GOFLAGS=-buildvcs=false go install -trimpath \
        "github.com/FerretDB/FerretDB/v2/cmd/ferretdb@$FERRETDB_VERSION"
}

cmd_install() {
    [[ $EUID -eq 0 ]] || die "install needs root (apt-get, PostgreSQL's extension directory)"
    "$ROOT/scripts/apt-install.sh" "${APT_PACKAGES[@]}"
    if ! extension_current; then
        check_archives
        say "building the DocumentDB extension into PostgreSQL $PG_MAJOR (several minutes, once)"
        rm -rf "$BUILD_DIR"
        mkdir -p "$BUILD_DIR"
        build_extension
        build_fingerprint >"$STAMP"
    fi
    install_ferretdb
}

# --- start / stop ----------------------------------------------------------------------

as_pg() { runuser -u "$PG_USER" -- "$@"; }

pid_alive() {
    local state
    # A killed server is a zombie until its parent reaps it: that is not running.
    state=$(ps -o stat= -p "$1" 2>/dev/null) && [[ "$state" != Z* ]]
}

# The postmaster's pid, from the file PostgreSQL keeps in its data directory.
postmaster_pid() { [[ -f "$1/pg/postmaster.pid" ]] && head -n 1 "$1/pg/postmaster.pid"; }
ferretdb_pid() { [[ -f "$1/ferretdb.pid" ]] && cat "$1/ferretdb.pid"; }

port_answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

init_cluster() {
    local pg="$1/pg"
    mkdir -p "$pg"
    chown "$PG_USER:" "$pg"
    as_pg "$PG_BIN/initdb" -D "$pg" -U "$PG_USER" --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    # No TCP listener: FerretDB, pg_cron's jobs and the extension's own connections back to
    # the server all go through the socket in the data directory.
    cat >>"$pg/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$pg'
shared_preload_libraries = '$PRELOAD'
cron.database_name = 'postgres'
cron.host = '$pg'
documentdb.localhost_connection_string = 'host=$pg'
documentdb.rum_library_load_option = 'require_documentdb_extended_rum'
documentdb.alternate_index_handler_name = 'extended_rum'
documentdb.defaultUseCompositeOpClass = on
documentdb.enableIndexOrderbyPushdown = on
CONF
}

start_postgres() {
    local pg="$1/pg"
    touch "$1/postgres.log"
    chown "$PG_USER:" "$1/postgres.log"
    as_pg "$PG_BIN/pg_ctl" -D "$pg" -l "$1/postgres.log" -w -t "$START_TIMEOUT_S" start >/dev/null ||
        { tail -n 20 "$1/postgres.log" >&2; die "PostgreSQL did not start (log: $1/postgres.log)"; }
    as_pg "$PG_BIN/psql" -h "$pg" -d postgres -q -v ON_ERROR_STOP=1 \
        -c 'SET client_min_messages = warning' -c 'CREATE EXTENSION IF NOT EXISTS documentdb CASCADE' \
        -c 'CREATE EXTENSION IF NOT EXISTS documentdb_extended_rum' >/dev/null
}

start_ferretdb() {
    local dir="$1" port="$2" pid
    "$FERRETDB" --postgresql-url="postgres://$PG_USER@/postgres?host=$dir/pg" \
        --listen-addr="127.0.0.1:$port" --debug-addr=- --telemetry=disable --no-auth \
        --state-dir="$dir" </dev/null >>"$dir/ferretdb.log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/ferretdb.pid"
    local deadline=$((SECONDS + START_TIMEOUT_S))
    until port_answers "$port"; do
        if ! pid_alive "$pid"; then
            tail -n 20 "$dir/ferretdb.log" >&2
            die "FerretDB exited during start-up (log: $dir/ferretdb.log)"
        fi
        ((SECONDS < deadline)) || die "FerretDB did not answer on 127.0.0.1:$port within ${START_TIMEOUT_S}s"
        sleep 0.1
    done
}

cmd_start() {
    local dir="$1" port="$2" pid
    [[ "$port" =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$port'"
    [[ -x "$FERRETDB" ]] || die "$FERRETDB is missing: run '$0 install' first"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    chmod a+x "$dir"  # PostgreSQL runs as its own user and keeps its data in DIR/pg
    as_pg test -x "$dir" || die "$dir must be reachable by the $PG_USER user (every parent needs o+x)"
    pid=$(ferretdb_pid "$dir") && pid_alive "$pid" && die "a FerretDB is already running on $dir (pid $pid)"
    port_answers "$port" && die "port $port on 127.0.0.1 is already in use"
    [[ -f "$dir/pg/PG_VERSION" ]] || init_cluster "$dir"
    start_postgres "$dir"
    start_ferretdb "$dir" "$port"
}

wait_gone() {
    local pid="$1" deadline=$((SECONDS + STOP_TIMEOUT_S))
    while pid_alive "$pid" && ((SECONDS < deadline)); do
        sleep 0.1
    done
    ! pid_alive "$pid"
}

cmd_stop() {
    local dir="$1" pid
    if pid=$(ferretdb_pid "$dir") && pid_alive "$pid"; then
        kill -TERM "$pid"
        wait_gone "$pid" || kill -KILL "$pid"
    fi
    rm -f "$dir/ferretdb.pid"
    if pid=$(postmaster_pid "$dir") && pid_alive "$pid"; then
        as_pg "$PG_BIN/pg_ctl" -D "$dir/pg" -m fast -w -t "$STOP_TIMEOUT_S" stop >/dev/null ||
            kill -KILL -- "-$pid"
    fi
}

# pg_ctl starts the postmaster as the leader of a session of its own, so its process group
# is exactly PostgreSQL's processes: killing the group is a crash, as a power cut would be.
cmd_kill() {
    local dir="$1" pid
    if pid=$(ferretdb_pid "$dir"); then
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid"
    fi
    rm -f "$dir/ferretdb.pid"
    if pid=$(postmaster_pid "$dir"); then
        kill -KILL -- "-$pid" 2>/dev/null || true
        wait_gone "$pid"
    fi
}

main() {
    case "${1:-}" in
        install) [[ $# -eq 1 ]] || usage; cmd_install ;;
        start) [[ $# -eq 3 ]] || usage; cmd_start "$2" "$3" ;;
        stop) [[ $# -eq 2 ]] || usage; cmd_stop "$2" ;;
        kill) [[ $# -eq 2 ]] || usage; cmd_kill "$2" ;;
        *) usage ;;
    esac
}

main "$@"
