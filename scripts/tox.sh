#!/usr/bin/env bash
# Run tox with every Python the machine has. pyenv's shims only answer for the active
# version, so put each installed version's own bin directory on PATH first.
# Usage: bash scripts/tox.sh -e py310,py311,py312,py313,lint,type
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v pyenv >/dev/null 2>&1; then
  for d in "$(pyenv root)"/versions/3.1[0-9]*/bin; do
    [ -d "$d" ] && PATH="$d:$PATH"
  done
  export PATH
fi
if ! command -v tox >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check tox
fi
exec tox "$@"
