#!/usr/bin/env bash
# The local MongoDB-compatible server with real index use: FerretDB 2 (the MongoDB wire
# protocol) on PostgreSQL 15 with the DocumentDB extension, built from pinned sources.
#
#   scripts/ferretdb.sh install                   apt packages, the extension and FerretDB (reused when current)
#   scripts/ferretdb.sh start DIR PORT            a cluster in DIR (created on first start), FerretDB on 127.0.0.1:PORT
#   scripts/ferretdb.sh install-sharded           install, then Citus and DocumentDB's distributed extension
#   scripts/ferretdb.sh start-sharded DIR PORT    a Citus coordinator and two workers in DIR, FerretDB on the coordinator
#   scripts/ferretdb.sh shard DIR DATABASE        shard DATABASE's records and idempotency keys there
#   scripts/ferretdb.sh stop DIR                  stop every server started on DIR
#   scripts/ferretdb.sh kill DIR                  crash them all at once (SIGKILL): recovery is the next start's job
#
# The connection string for a started server is mongodb://127.0.0.1:PORT/ (FERRETDB_HOST=ADDRESS
# makes FerretDB listen on another local address instead, e.g. one that pods can reach).
# FerretDB has no shardCollection command: `shard` does it in SQL on the coordinator
# (docs/deployment.md, "Sharding on DocumentDB").
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
readonly LISTEN_HOST="${FERRETDB_HOST:-127.0.0.1}"
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
    sed -n '5,11s/^#   //p' "$0" >&2
    exit 2
}

# --- install -------------------------------------------------------------------------

# What an installed build was made from: the archives' checksums, PostgreSQL's version and
# this script's build steps (the functions named). A second install with the same stamp is a no-op.
build_fingerprint() {
    local step
    {
        cat "$VENDOR_DIR/SHA256SUMS"
        "$PG_CONFIG" --version
        for step in "$@"; do
            sed -n "/^$step()/,/^}/p" "$0"
        done
    } | sha256sum | cut -d' ' -f1
}

extension_current() {
    local lib
    lib=$("$PG_CONFIG" --pkglibdir)
    [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(build_fingerprint build_extension)" ]] &&
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
        build_fingerprint build_extension >"$STAMP"
    fi
    install_ferretdb
}

# --- the sharded engine: Citus and DocumentDB's distributed extension -------------------

readonly CITUS=citus-12.1.7
# Beside the single-node stamp; the files this build installs (citus*, pg_documentdb_distributed,
# documentdb_distributed*) are all named apart from the single-node extension's, so both live
# in PostgreSQL's own directories and a cluster chooses by its shared_preload_libraries.
readonly SHARDED_STAMP="/usr/share/postgresql/$PG_MAJOR/extension/documentdb_distributed.build-fingerprint"
# Debian's pg_config.h defines HAVE_LIBZSTD, so Citus's columnar code includes zstd.h and
# lz4.h whatever configure is told.
readonly SHARDED_APT_PACKAGES=(libzstd-dev liblz4-dev)

sharded_current() {
    local lib
    lib=$("$PG_CONFIG" --pkglibdir)
    [[ -f "$SHARDED_STAMP" && "$(cat "$SHARDED_STAMP")" == "$(build_fingerprint build_libbson build_sharded)" ]] &&
        [[ -f "$lib/citus.so" && -f "$lib/pg_documentdb_distributed.so" ]]
}

# The same libbson and intelmathlib.pc as build_extension, for a checkout whose single-node
# build was done elsewhere (the extension is the machine's); sets PKG_CONFIG_PATH.
build_libbson() {
    local prefix="$BUILD_DIR/prefix" arch
    arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
    if [[ ! -f "$prefix/lib/pkgconfig/libbson-static-1.0.pc" ]]; then
        unpack "$LIBBSON" mongo-c-driver-1.28.0
        quietly cmake -S "$BUILD_DIR/mongo-c-driver-1.28.0" -B "$BUILD_DIR/libbson-build" -DENABLE_MONGOC=OFF \
            -DENABLE_TESTS=OFF -DENABLE_EXAMPLES=OFF -DENABLE_STATIC=ON -DCMAKE_BUILD_TYPE=Release \
            -DCMAKE_C_FLAGS=-fPIC -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib
        quietly cmake --build "$BUILD_DIR/libbson-build" -j "$(nproc)" --target install
    fi
    mkdir -p "$BUILD_DIR/pkgconfig"
    printf '%s\n' 'Name: intelmathlib' 'Description: Intel Decimal Floating-Point Math Library' 'Version: 2.0' \
        'Cflags: -I/usr/include' "Libs: -L/usr/lib/$arch -lbidgcc000" >"$BUILD_DIR/pkgconfig/intelmathlib.pc"
    export PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$BUILD_DIR/pkgconfig"
}

# Citus without LLVM bitcode (a second compile of every file) and without libcurl (its
# statistics collection); then the distributed module from the same DocumentDB tree.
build_sharded() {
    local jobs
    jobs=$(nproc)
    unpack "$CITUS" "$CITUS"
    (cd "$BUILD_DIR/$CITUS" && quietly ./configure PG_CONFIG="$PG_CONFIG" --without-libcurl)
    quietly make -C "$BUILD_DIR/$CITUS" -j "$jobs" with_llvm=no install
    unpack "$DOCUMENTDB" documentdb
    quietly make -C "$BUILD_DIR/documentdb/internal/pg_documentdb_distributed" -j "$jobs" \
        PG_CONFIG="$PG_CONFIG" with_llvm=no install
}

cmd_install_sharded() {
    cmd_install
    "$ROOT/scripts/apt-install.sh" "${SHARDED_APT_PACKAGES[@]}"
    sharded_current && return
    check_archives
    say "building Citus and the distributed DocumentDB extension into PostgreSQL $PG_MAJOR (a few minutes, once)"
    mkdir -p "$BUILD_DIR"
    build_libbson
    build_sharded
    build_fingerprint build_libbson build_sharded >"$SHARDED_STAMP"
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

port_answers() { (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null; }

# A cluster in DIR/pg with the extension's settings and the libraries it preloads.
init_cluster() {
    local pg="$1/pg" preload="${2:-$PRELOAD}"
    mkdir -p "$pg"
    chown "$PG_USER:" "$pg"
    as_pg "$PG_BIN/initdb" -D "$pg" -U "$PG_USER" --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    # No TCP listener: FerretDB, pg_cron's jobs and the extension's own connections back to
    # the server all go through the socket in the data directory.
    cat >>"$pg/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$pg'
shared_preload_libraries = '$preload'
cron.database_name = 'postgres'
cron.host = '$pg'
documentdb.localhost_connection_string = 'host=$pg'
documentdb.rum_library_load_option = 'require_documentdb_extended_rum'
documentdb.alternate_index_handler_name = 'extended_rum'
documentdb.defaultUseCompositeOpClass = on
documentdb.enableIndexOrderbyPushdown = on
CONF
}

start_server() {
    local pg="$1/pg"
    touch "$1/postgres.log"
    chown "$PG_USER:" "$1/postgres.log"
    as_pg "$PG_BIN/pg_ctl" -D "$pg" -l "$1/postgres.log" -w -t "$START_TIMEOUT_S" start >/dev/null ||
        { tail -n 20 "$1/postgres.log" >&2; die "PostgreSQL did not start (log: $1/postgres.log)"; }
}

start_postgres() {
    start_server "$1"
    as_pg "$PG_BIN/psql" -h "$1/pg" -d postgres -q -v ON_ERROR_STOP=1 \
        -c 'SET client_min_messages = warning' -c 'CREATE EXTENSION IF NOT EXISTS documentdb CASCADE' \
        -c 'CREATE EXTENSION IF NOT EXISTS documentdb_extended_rum' >/dev/null
}

start_ferretdb() {
    local dir="$1" port="$2" url="${3:-postgres://$PG_USER@/postgres?host=$1/pg}" pid
    "$FERRETDB" --postgresql-url="$url" \
        --listen-addr="$LISTEN_HOST:$port" --debug-addr=- --telemetry=disable --no-auth \
        --state-dir="$dir" </dev/null >>"$dir/ferretdb.log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/ferretdb.pid"
    local deadline=$((SECONDS + START_TIMEOUT_S))
    until port_answers "$port" "$LISTEN_HOST"; do
        if ! pid_alive "$pid"; then
            tail -n 20 "$dir/ferretdb.log" >&2
            die "FerretDB exited during start-up (log: $dir/ferretdb.log)"
        fi
        ((SECONDS < deadline)) || die "FerretDB did not answer on $LISTEN_HOST:$port within ${START_TIMEOUT_S}s"
        sleep 0.1
    done
}

# DIR made reachable by PostgreSQL's user, with nothing of ours running on it nor on PORT.
check_start() {
    local dir="$1" port="$2" pid
    [[ "$port" =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$port'"
    [[ -x "$FERRETDB" ]] || die "$FERRETDB is missing: run '$0 install' first"
    chmod a+x "$dir"  # PostgreSQL runs as its own user and keeps its data below DIR
    as_pg test -x "$dir" || die "$dir must be reachable by the $PG_USER user (every parent needs o+x)"
    pid=$(ferretdb_pid "$dir") && pid_alive "$pid" && die "a FerretDB is already running on $dir (pid $pid)"
    port_answers "$port" "$LISTEN_HOST" && die "port $port on $LISTEN_HOST is already in use"
    return 0
}

cmd_start() {
    local dir="$1" port="$2"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    check_start "$dir" "$port"
    [[ -f "$dir/pg/PG_VERSION" ]] || init_cluster "$dir"
    start_postgres "$dir"
    start_ferretdb "$dir" "$port"
}

# --- the sharded engine: three clusters in DIR/coordinator, DIR/worker1, DIR/worker2 -----

readonly NODES=(coordinator worker1 worker2)
# Citus first; the distributed module before extended_rum, as upstream loads them.
readonly SHARDED_PRELOAD='citus,pg_cron,pg_documentdb_core,pg_documentdb,pg_documentdb_distributed,pg_documentdb_extended_rum'

# Citus reaches its nodes by host and port, so each listens on loopback TCP; the ports are
# chosen at the first start and kept in DIR/ports, since the nodes are registered by them.
free_tcp_port() {
    local port
    while port=$((20000 + RANDOM % 30000)); port_answers "$port"; do :; done
    echo "$port"
}

node_port() { awk -v node="$2" '$1 == node { print $2 }' "$1/ports"; }

init_node() {
    local node="$1" port="$2" pg="$1/pg"
    init_cluster "$node" "$SHARDED_PRELOAD"
    # Later lines override the single-node ones above them.
    cat >>"$pg/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
documentdb.localhost_connection_string = 'host=$pg port=$port'
wal_level = logical
max_prepared_transactions = 100
citus.local_hostname = '127.0.0.1'
citus.node_conninfo = 'sslmode=disable'
citus.shard_count = 8
citus.propagate_set_commands = 'local'
citus.allow_unsafe_constraints = 'true'
citus.enable_non_colocated_router_query_pushdown = 'true'
CONF
}

# SQL on one node of DIR, from stdin; more psql options (variables) after the node.
node_sql() {
    local dir="$1" node="$2"
    shift 2
    as_pg "$PG_BIN/psql" -h "$dir/$node/pg" -p "$(node_port "$dir" "$node")" -d postgres -q -X -v ON_ERROR_STOP=1 \
        "$@" -c 'SET client_min_messages = warning' -f - >/dev/null
}

# The order matters (each step fails otherwise): the coordinator alone holds shards while
# the extension is created and the cluster initialised (it needs documentdb_data.changes,
# which upstream's setup creates by hand); the index queue joins the extension before any
# worker is added, or adding one tries to drop it; then the workers take every shard.
setup_cluster() {
    local dir="$1" coordinator worker
    coordinator=$(node_port "$dir" coordinator)
    node_sql "$dir" coordinator <<SQL
CREATE EXTENSION citus;
SELECT citus_set_coordinator_host('127.0.0.1', $coordinator);
SELECT citus_set_node_property('127.0.0.1', $coordinator, 'shouldhaveshards', true);
CREATE EXTENSION documentdb_distributed CASCADE;
CREATE TABLE documentdb_data.changes (
    collection_id bigint NOT NULL, shard_key_value bigint NOT NULL,
    object_id documentdb_core.bson NOT NULL, PRIMARY KEY (shard_key_value, object_id));
SELECT documentdb_api_distributed.initialize_cluster();
CREATE EXTENSION documentdb_extended_rum;
ALTER EXTENSION documentdb ADD TABLE documentdb_api_catalog.documentdb_index_queue;
SQL
    for worker in worker1 worker2; do
        node_sql "$dir" "$worker" <<<'CREATE EXTENSION citus;'
        node_sql "$dir" coordinator <<<"SELECT citus_add_node('127.0.0.1', $(node_port "$dir" "$worker"));"
    done
    node_sql "$dir" coordinator <<SQL
SELECT citus_set_node_property('127.0.0.1', $coordinator, 'shouldhaveshards', false);
DO \$\$ BEGIN
    IF NOT (SELECT bool_and(result) FROM citus_check_cluster_node_health()) THEN
        RAISE 'a Citus node cannot reach another';
    END IF;
END \$\$;
SQL
}

cmd_start_sharded() {
    local dir="$1" port="$2" node
    [[ -f "$("$PG_CONFIG" --pkglibdir)/pg_documentdb_distributed.so" ]] ||
        die "the distributed extension is missing: run '$0 install-sharded' first"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    check_start "$dir" "$port"
    local fresh=false
    if [[ ! -f "$dir/ports" ]]; then
        fresh=true
        for node in "${NODES[@]}"; do echo "$node $(free_tcp_port)"; done >"$dir/ports"
        for node in "${NODES[@]}"; do init_node "$dir/$node" "$(node_port "$dir" "$node")"; done
    fi
    for node in "${NODES[@]}"; do
        port_answers "$(node_port "$dir" "$node")" && die "port $(node_port "$dir" "$node") of the $node is in use"
        start_server "$dir/$node"
    done
    if [[ ! -f "$dir/cluster-ready" ]]; then
        $fresh || die "an earlier first start on $dir did not finish setting up the cluster: stop it and remove $dir"
        setup_cluster "$dir"
        touch "$dir/cluster-ready"
    fi
    start_ferretdb "$dir" "$port" "postgres://$PG_USER@127.0.0.1:$(node_port "$dir" coordinator)/postgres"
}

# DocumentDB accepts only hashed shard keys: records on {source: "hashed"} (a source's
# pages stay on one shard, as with MongoDB's {source: 1, _id: "hashed"}, but one source
# cannot span shards), keys on {_id: "hashed"} as on MongoDB. Collections already sharded
# are left as they are, so this can run on every start.
cmd_shard() {
    local dir="$1" database="$2"
    [[ -f "$dir/cluster-ready" ]] || die "$dir holds no sharded engine: run '$0 start-sharded $dir PORT' first"
    node_sql "$dir" coordinator -v database="$database" <<'SQL'
SELECT documentdb_api.shard_collection(:'database', name, key::documentdb_core.bson, false)
FROM (VALUES ('records', '{"source": "hashed"}'), ('records.idempotency', '{"_id": "hashed"}')) AS wanted(name, key)
WHERE NOT EXISTS (
    SELECT FROM documentdb_api_catalog.collections c
    WHERE c.database_name = :'database' AND c.collection_name = wanted.name AND c.shard_key IS NOT NULL);
SQL
}

# Every cluster started on DIR: DIR/pg (single node), or the coordinator and then the workers.
servers() {
    local dir="$1" server
    for server in "$dir" "${NODES[@]/#/$dir/}"; do
        [[ -d "$server/pg" ]] && echo "$server"
    done
    return 0
}

wait_gone() {
    local pid="$1" deadline=$((SECONDS + STOP_TIMEOUT_S))
    while pid_alive "$pid" && ((SECONDS < deadline)); do
        sleep 0.1
    done
    ! pid_alive "$pid"
}

cmd_stop() {
    local dir="$1" pid server
    if pid=$(ferretdb_pid "$dir") && pid_alive "$pid"; then
        kill -TERM "$pid"
        wait_gone "$pid" || kill -KILL "$pid"
    fi
    rm -f "$dir/ferretdb.pid"
    for server in $(servers "$dir"); do
        if pid=$(postmaster_pid "$server") && pid_alive "$pid"; then
            as_pg "$PG_BIN/pg_ctl" -D "$server/pg" -m fast -w -t "$STOP_TIMEOUT_S" stop >/dev/null ||
                kill -KILL -- "-$pid"
        fi
    done
}

# pg_ctl starts the postmaster as the leader of a session of its own, so its process group
# is exactly PostgreSQL's processes: killing the group is a crash, as a power cut would be.
cmd_kill() {
    local dir="$1" pid server
    if pid=$(ferretdb_pid "$dir"); then
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid"
    fi
    rm -f "$dir/ferretdb.pid"
    for server in $(servers "$dir"); do
        if pid=$(postmaster_pid "$server"); then
            kill -KILL -- "-$pid" 2>/dev/null || true
            wait_gone "$pid"
        fi
    done
}

main() {
    case "${1:-}" in
        install) [[ $# -eq 1 ]] || usage; cmd_install ;;
        install-sharded) [[ $# -eq 1 ]] || usage; cmd_install_sharded ;;
        start) [[ $# -eq 3 ]] || usage; cmd_start "$2" "$3" ;;
        start-sharded) [[ $# -eq 3 ]] || usage; cmd_start_sharded "$2" "$3" ;;
        shard) [[ $# -eq 3 ]] || usage; cmd_shard "$2" "$3" ;;
        stop) [[ $# -eq 2 ]] || usage; cmd_stop "$2" ;;
        kill) [[ $# -eq 2 ]] || usage; cmd_kill "$2" ;;
        *) usage ;;
    esac
}

main "$@"
