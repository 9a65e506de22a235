#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: installs every dependency, then runs pytest.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/dev-setup.sh

# Programs the tests run for real (llama.cpp server, agents, redis) are installed by their own
# scripts/setup-*.sh. They run side by side (the llama.cpp build alone takes ~20 min on a fresh
# machine); each one's output goes to .ci-cache/logs/ and is shown when it fails.
mkdir -p .ci-cache/logs
pids=()
names=()
for setup in scripts/setup-*.sh; do
  [ -e "$setup" ] || continue
  name=$(basename "$setup" .sh)
  echo "==> $setup (log: .ci-cache/logs/$name.log)"
  bash "$setup" > ".ci-cache/logs/$name.log" 2>&1 &
  pids+=($!)
  names+=("$name")
done
failed=0
for i in "${!pids[@]}"; do
  if wait "${pids[$i]}"; then
    echo "==> ${names[$i]}: ok"
  else
    echo "==> ${names[$i]}: FAILED; its log ends with:"
    tail -n 40 ".ci-cache/logs/${names[$i]}.log"
    failed=1
  fi
done
[ "$failed" = 0 ] || exit 1

echo "==> pytest"
exec .venv/bin/python -m pytest "$@"
