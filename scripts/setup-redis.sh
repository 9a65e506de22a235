#!/usr/bin/env bash
# Install redis-server (Debian package) for the Redis cooldown-store tests.
# Idempotent: does nothing when redis-server is already on PATH. The tests start and stop
# their own server (tests/redis_server.py); this script never leaves one running.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
  echo "redis-server already installed: $(redis-server --version | head -n1)"
  exit 0
fi

# Another setup script may hold the dpkg lock: wait for it (DPkg::Lock::Timeout) rather
# than fail.
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "setup-redis: need root (or sudo) to install the redis-server package" >&2
    exit 1
  fi
fi

echo "setup-redis: apt-get update"
$SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq
echo "setup-redis: installing redis-server (Debian package)"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
  --no-install-recommends redis-server
# The package may start a system service; the tests use their own server on a free port.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then
  $SUDO systemctl stop redis-server || true
fi
echo "setup-redis: $(redis-server --version | head -n1)"
