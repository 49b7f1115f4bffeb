#!/usr/bin/env bash
# Install the Debian packages the test suite needs. Runs only as root (CI and lab machines);
# elsewhere it prints what is missing and the tests that need it are reported as skipped.
set -uo pipefail
PKGS=()
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "system-deps: not root; missing Debian packages: ${missing[*]}" >&2
  exit 0
fi
apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"
