#!/usr/bin/env bash
# Install the Prometheus server (Debian package `prometheus`) for the gateway's scrape test.
# Idempotent: does nothing when `prometheus` is already on PATH. The test starts its own
# server on a free loopback port with a temporary config and data dir; this script never
# leaves one running (the package's own service is stopped when it was started).
set -euo pipefail

if command -v prometheus >/dev/null 2>&1; then
  echo "prometheus already installed: $(prometheus --version 2>&1 | head -n1)"
  exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "setup-prometheus: need root (or sudo) to install the prometheus package" >&2
    exit 1
  fi
fi

echo "setup-prometheus: apt-get update"
$SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq
echo "setup-prometheus: installing prometheus (Debian package)"
# Only the server: no exporters or web assets beyond what the package needs.
DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
  --no-install-recommends prometheus
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  $SUDO systemctl stop prometheus || true
fi
echo "setup-prometheus: $(prometheus --version 2>&1 | head -n1)"
