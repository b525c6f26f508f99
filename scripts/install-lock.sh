#!/usr/bin/env bash
# Replays hashed lock files into a virtualenv, creating it if needed. Nothing is chosen
# at install time: --no-deps installs exactly the lines of the locks, whatever the
# index holds today and whatever pip the interpreter brings; wheels only, so no build
# step fetches build tools of its own; pip check then fails if a lock misses a
# dependency of anything it lists.
#
#   scripts/install-lock.sh VENV LOCK...      (PYTHON picks the interpreter: python3)
set -euo pipefail

venv=$1
shift
[[ -x "$venv/bin/python" ]] || "${PYTHON:-python3}" -m venv "$venv"
locks=()
for lock in "$@"; do
    locks+=(--requirement "$lock")
done
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --no-deps --require-hashes --only-binary=:all: "${locks[@]}"
problems=$("$venv/bin/python" -m pip check --disable-pip-version-check) || {
    echo "install-lock: $venv does not hold what its locks need:" >&2
    echo "$problems" >&2
    exit 1
}
