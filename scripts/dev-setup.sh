#!/usr/bin/env bash
# One command for a development environment: core and all plugins, editable, in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check uv
fi
UV="$(command -v uv || echo "python3 -m uv")"
echo "==> uv sync (core + every plugin, editable, with dev tools)"
$UV sync --all-packages --locked --quiet --compile-bytecode
