#!/usr/bin/env bash
# Installs the tools that are not Python packages of the project into .tools/ at
# pinned versions. Idempotent: a tool already installed at its pinned version is
# kept, so this is cheap to call before every lint run.
#   - Go programs, built from the Go module proxy with the local Go toolchain.
#   - checkov and podman-compose, each replayed from its hashed lock in
#     scripts/locks/ into a virtualenv of its own: checkov's dependency pins
#     conflict with the project's dev requirements, and neither belongs to the
#     service.
#   - podman (with runc), mmdebstrap and nginx, from the distribution's packages
#     (apt-get, as root or through sudo), each only when its command is missing: the
#     container engine of `make test-container`, the maker of its stand-in base image,
#     and the HTTP edge that `make lint` checks (nginx -t) and the integration suite
#     runs. A runner's own engine is never touched: its podman need not be a package
#     dpkg knows, and its runc may come from containerd.io, which conflicts with the
#     runc package.
# Usage: scripts/install-tools.sh [TOOL...]   (default: all of them)
set -euo pipefail
cd "$(dirname "$0")/.."

readonly TOOLS="$PWD/.tools"
readonly KUSTOMIZE="sigs.k8s.io/kustomize/kustomize/v5@v5.8.2"
readonly KUBE_SCORE="github.com/zegl/kube-score/cmd/kube-score@v1.20.0"
readonly ACTIONLINT="github.com/rhysd/actionlint/cmd/actionlint@v1.7.12"

# go_tool NAME MODULE@VERSION: build NAME into .tools/bin unless that exact
# version is already there.
go_tool() {
  local name=$1 module=$2
  local stamp="$TOOLS/versions/$name"
  if [[ -x "$TOOLS/bin/$name" && "$(cat "$stamp" 2>/dev/null)" == "$module" ]]; then
    return
  fi
  command -v go >/dev/null || { echo "install-tools: Go is required to build $name" >&2; exit 1; }
  echo "install-tools: building $module"
  # GOTOOLCHAIN=local: never download another Go; a version pin that needs a
  # newer toolchain must fail here, visibly.
  GOTOOLCHAIN=local GOBIN="$TOOLS/bin" GOFLAGS=-buildvcs=false go install "$module"
  echo "$module" >"$stamp"
}

# python_tool NAME: replay scripts/locks/NAME.txt into .tools/NAME-venv unless that
# exact lock is already there; a changed lock gets a new venv, so nothing stale stays.
python_tool() {
  local name=$1
  local lock="scripts/locks/$name.txt"
  local venv="$TOOLS/$name-venv"
  local stamp="$TOOLS/versions/$name"
  local digest
  digest=$(sha256sum "$lock" | cut -d' ' -f1)
  if [[ -x "$venv/bin/$name" && "$(cat "$stamp" 2>/dev/null)" == "$digest" ]]; then
    return
  fi
  echo "install-tools: replaying $lock into .tools/$name-venv"
  rm -rf "$venv"
  scripts/install-lock.sh "$venv" "$lock"
  echo "$digest" >"$stamp"
}

# apt_tool COMMAND...: install the Debian package of each command that is missing
# (here every command's package has the command's name).
apt_tool() {
  local missing=() command
  for command in "$@"; do
    command -v "$command" >/dev/null || missing+=("$command")
  done
  ((${#missing[@]} == 0)) || scripts/apt-install.sh "${missing[@]}"
}

install() {
  case "$1" in
    kustomize) go_tool kustomize "$KUSTOMIZE" ;;
    kube-score) go_tool kube-score "$KUBE_SCORE" ;;
    actionlint) go_tool actionlint "$ACTIONLINT" ;;
    checkov) python_tool checkov ;;
    podman-compose) python_tool podman-compose ;;
    podman) apt_tool podman runc ;;
    mmdebstrap) apt_tool mmdebstrap ;;
    nginx) apt_tool nginx ;;
    *) echo "install-tools: unknown tool $1" >&2; exit 2 ;;
  esac
}

mkdir -p "$TOOLS/bin" "$TOOLS/versions"
if [[ $# -eq 0 ]]; then
  set -- kustomize kube-score actionlint checkov podman-compose nginx
fi
for tool in "$@"; do
  install "$tool"
done
