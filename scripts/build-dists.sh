#!/usr/bin/env bash
# Build a wheel and an sdist of the core (llmcore-framework) and of each plugin in plugins/,
# then check them with `twine check --strict`.
# Usage: bash scripts/build-dists.sh [OUT_DIR]   (default: dist/)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-dist}"
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"

mkdir -p "$OUT"
# Only our own artifacts are removed, so a stale version can never be picked up.
rm -f "$OUT"/llmcore-*.whl "$OUT"/llmcore-*.tar.gz "$OUT"/llmcore_*.whl "$OUT"/llmcore_*.tar.gz

packages=(core plugins/llmcore-plugin-*)
echo "==> building ${#packages[@]} distributions into $OUT/"
if command -v uv >/dev/null 2>&1; then
  uv build --all-packages --out-dir "$OUT" --quiet
else
  for pkg in "${packages[@]}"; do
    echo "    $pkg"
    "$PY" -m build --outdir "$OUT" "$pkg" >/dev/null
  done
fi

count=$(ls "$OUT"/*.whl "$OUT"/*.tar.gz | grep -c 'llmcore')
expected=$(( ${#packages[@]} * 2 ))
if [ "$count" -ne "$expected" ]; then
  echo "error: expected $expected artifacts in $OUT/, found $count" >&2
  exit 1
fi
echo "==> twine check ($count artifacts)"
"$PY" -m twine check --strict "$OUT"/llmcore*.whl "$OUT"/llmcore*.tar.gz
echo "==> ok: $count artifacts in $OUT/"
