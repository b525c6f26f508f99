#!/usr/bin/env bash
# Proves that every install replays its lock. Each lock goes into a fresh virtualenv
# whose pip is the oldest supported for the interpreter (23.0.1, Debian 12's, on Python
# 3.11; the interpreter's own pip on 3.12 and later, where pip 23.0 does not run); the
# runtime and dev locks through the Makefile's own targets, the others through
# scripts/install-lock.sh. The installed set is then compared with the lock: a
# distribution or version the lock does not name means the install chose it, and fails.
#
#   scripts/test-install.sh      (PYTHON picks the interpreter: python3)
set -euo pipefail
cd "$(dirname "$0")/.."

export PYTHON=${PYTHON:-python3}
readonly OTHER_LOCKS=(bench/requirements.txt scripts/locks/pip-tools.txt
                      scripts/locks/checkov.txt scripts/locks/podman-compose.txt)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# fresh_venv DIR: a virtualenv with the oldest supported pip.
fresh_venv() {
    "$PYTHON" -m venv "$1"
    if "$1/bin/python" -c 'import sys; sys.exit(sys.version_info >= (3, 12))'; then
        "$1/bin/python" -m pip install --quiet --disable-pip-version-check \
            --no-deps --require-hashes -r scripts/locks/pip-oldest.txt
    fi
}

# same_as_lock VENV LOCK: fail unless VENV holds exactly the distributions LOCK names,
# at its versions (the seeds a new venv brings, pip and setuptools, aside).
same_as_lock() {
    "$1/bin/python" - "$2" <<'PY'
import re
import sys
from importlib.metadata import distributions

def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()

text = open(sys.argv[1]).read()
locked = {norm(n): v for n, v in re.findall(r"^([A-Za-z0-9][\w.-]*)==([^\s;\\]+)", text, re.M)}
installed = {norm(d.metadata["Name"]): d.version for d in distributions()}
seeds = {"pip", "setuptools", "wheel"}
problems = [f"{n}=={v} is installed but not in the lock"
            for n, v in sorted(installed.items()) if n not in locked and n not in seeds]
problems += [f"{n}=={v} is in the lock but {installed.get(n, 'nothing')} is installed"
             for n, v in sorted(locked.items()) if installed.get(n) != v]
pip = installed["pip"]
for problem in problems:
    print(f"test-install: {sys.argv[1]}: {problem}", file=sys.stderr)
print(f"test-install: {sys.argv[1]}: {len(locked)} distributions replayed exactly "
      f"(pip {pip})" if not problems else f"test-install: {sys.argv[1]}: FAILED")
sys.exit(bool(problems))
PY
}

failed=0
fresh_venv "$work/dev"
make --no-print-directory PYTHON="$PYTHON" VENV="$work/dev" venv >/dev/null
same_as_lock "$work/dev" requirements-dev.txt || failed=1

fresh_venv "$work/runtime"
make --no-print-directory PYTHON="$PYTHON" VENV="$work/runtime" "$work/runtime/.runtime" >/dev/null
same_as_lock "$work/runtime" requirements.txt || failed=1

for lock in "${OTHER_LOCKS[@]}"; do
    venv="$work/$(basename "$lock" .txt)"
    fresh_venv "$venv"
    scripts/install-lock.sh "$venv" "$lock"
    same_as_lock "$venv" "$lock" || failed=1
done
exit "$failed"
