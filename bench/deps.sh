#!/usr/bin/env bash
# Installs Ganeti's htools (hbal) for `python -m bench hbal`. Needs root on Debian/Ubuntu.
set -euo pipefail
if command -v hbal >/dev/null 2>&1; then
  echo "hbal already installed: $(hbal --version | head -1)"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "bench/deps.sh: run as root to install ganeti-htools (apt-get)" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ganeti-htools
hbal --version | head -1
