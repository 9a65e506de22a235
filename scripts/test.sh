#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: installs every dependency, then runs pytest.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/dev-setup.sh
# Programs the tests run for real (servers, agents) are installed by their own scripts.
for setup in scripts/setup-*.sh; do
  [ -e "$setup" ] || continue
  echo "==> $setup"
  bash "$setup"
done

echo "==> pytest"
exec .venv/bin/python -m pytest "$@"
