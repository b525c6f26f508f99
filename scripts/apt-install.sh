#!/usr/bin/env bash
# Install the Debian packages named that are missing; a no-op (no `apt-get update`) when
# every one is there already. Through sudo when not root.
#
#   scripts/apt-install.sh PACKAGE...
set -euo pipefail

missing=()
for package in "$@"; do
    dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q 'ok installed' || missing+=("$package")
done
((${#missing[@]} == 0)) && exit 0
command -v apt-get >/dev/null || { echo "apt-install: install ${missing[*]} (no apt-get here)" >&2; exit 1; }
sudo=()
((EUID == 0)) || sudo=(sudo)
echo "apt-install: installing ${missing[*]} with apt-get" >&2
"${sudo[@]}" apt-get update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
