"""`make demo` (scripts/demo.sh) does what docs/demo.md promises, with the real llama.cpp server.

It sets up, starts the server, fails over from the absent Ollama to it, shows the attempts
and stops the server again. Runs the script exactly as a user would.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess

import pytest
from real_llama import ROOT, ensure_installed

pytestmark = pytest.mark.real_server


def _ollama_port_free() -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", 11434)) != 0


@pytest.mark.timeout(600)
def test_demo_fails_over_streams_shows_attempts_and_stops_the_server() -> None:
    assert _ollama_port_free(), "something listens on 127.0.0.1:11434: the demo needs it free"
    ensure_installed()
    out_json = ROOT / ".ci-cache" / "logs" / "demo-chat.json"
    out_json.unlink(missing_ok=True)
    env = {**os.environ, "DEMO_PROMPT": "Say hello."}
    env.pop("LLMCORE_CONFIG", None)
    proc = subprocess.run(
        ["bash", "scripts/demo.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=540
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]

    # every step announced, and the server stopped at the end
    for step in ("1/5", "2/5", "3/5", "4/5", "5/5"):
        assert f"==> {step}" in out, out[-3000:]
    pid = int(re.search(r"\(pid (\d+), log:", out).group(1))  # type: ignore[union-attr]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)

    # the --json run: Ollama refused, the llama.cpp server answered
    data = json.loads(out_json.read_text())
    attempts = data["attempts"]
    assert [a["provider"] for a in attempts] == ["ollama", "llama"]
    assert not attempts[0]["ok"] and attempts[0]["error_type"] == "ProviderConnectionError"
    assert attempts[1]["ok"]
    assert all(a["duration_s"] > 0 for a in attempts)
    assert data["provider"] == "llama" and data["model"] == "gemma3"
    assert data["usage"]["output_tokens"] > 0
    # and the printed attempt table shows both, with their times
    assert re.search(r"1\s+ollama\s+gemma3:270m\s+ProviderConnectionError\s+[\d.]+ ms", out)
    assert re.search(r"2\s+llama\s+gemma3\s+ok\s+[\d.]+ ms", out)
