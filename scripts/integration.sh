#!/usr/bin/env bash
# The integration suite: the service under gunicorn, over HTTP, against a real server.
#
# MONGODB_URI set (e.g. after `docker compose up -d mongo`): that server is used.
# MONGODB_URI unset or memory:// (the Makefile's default for `make run`): FerretDB 2 on PostgreSQL
# (scripts/ferretdb.sh) is built if needed and started on a free loopback port in a temporary
# directory, then stopped when the suite ends. FERRETDB_PG_HOST (and PGPORT) tell the query-plan
# gates where PostgreSQL's socket is, for EXPLAIN ANALYZE.
# FERRETDB_SHARDED=1: the sharded engine instead (Citus coordinator and two workers, FerretDB on the
# coordinator), with the run's database sharded before the suite starts (`make test-sharded`).
# Each run uses a database of its own (MONGODB_DATABASE, unless already set).
# Arguments are passed to pytest, e.g. `scripts/integration.sh -m blackbox -x`.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly PYTHON=.venv/bin/python
# Bounds the whole run, whatever hangs: the suite takes about a few minutes.
readonly SUITE_TIMEOUT_S="${INTEGRATION_TIMEOUT_S:-1200}"

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_ferretdb() {
    local dir port
    scripts/ferretdb.sh install
    dir=$(mktemp -d)
    # shellcheck disable=SC2064 # expand now: dir is local
    trap "scripts/ferretdb.sh stop '$dir'; rm -rf '$dir'" EXIT
    port=$(free_port)
    scripts/ferretdb.sh start "$dir" "$port"
    export MONGODB_URI="mongodb://127.0.0.1:$port/" FERRETDB_PG_HOST="$dir/pg"
    echo "integration.sh: FerretDB 2 on 127.0.0.1:$port (data in $dir)"
}

start_sharded() {
    local dir port
    scripts/ferretdb.sh install-sharded
    dir=$(mktemp -d)
    # shellcheck disable=SC2064 # expand now: dir is local
    trap "scripts/ferretdb.sh stop '$dir'; rm -rf '$dir'" EXIT
    port=$(free_port)
    scripts/ferretdb.sh start-sharded "$dir" "$port"
    scripts/ferretdb.sh shard "$dir" "$MONGODB_DATABASE"
    PGPORT=$(awk '$1 == "coordinator" { print $2 }' "$dir/ports")
    export MONGODB_URI="mongodb://127.0.0.1:$port/" FERRETDB_PG_HOST="$dir/coordinator/pg" PGPORT \
        FERRETDB_SHARDED_DIR="$dir"
    echo "integration.sh: FerretDB 2 on 127.0.0.1:$port, sharded over a Citus coordinator and 2 workers (data in $dir)"
}

export MONGODB_DATABASE="${MONGODB_DATABASE:-it_$(date +%Y%m%d%H%M%S)_$$}"
if [[ "${FERRETDB_SHARDED:-}" == 1 ]]; then
    start_sharded
elif [[ -z "${MONGODB_URI:-}" || "$MONGODB_URI" == "memory://" ]]; then
    start_ferretdb
fi
echo "integration.sh: database $MONGODB_DATABASE"

# The whole suite unless the arguments name tests of it.
targets=(tests/integration)
for arg in "$@"; do
    [[ "$arg" == tests/* ]] && targets=()
done
# -o addopts= drops the unit tests' coverage options; no cache directory is written.
timeout --signal=INT --kill-after=30 "$SUITE_TIMEOUT_S" \
    .venv/bin/pytest "${targets[@]}" -o addopts= --strict-markers -p no:cacheprovider -ra "$@"
