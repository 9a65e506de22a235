"""``via_gateway: true``: an agent's own model calls go through a local ``llmcore serve``.

Implemented once for every agent plugin: the run gets a copy of the agent whose config
says ``base_url: http://127.0.0.1:PORT/v1`` (each plugin already turns ``base_url`` and
``api_key_env`` into its program's own settings: Claude Code's ``ANTHROPIC_BASE_URL``,
Codex's model provider, Qwen's ``OPENAI_BASE_URL``, OpenCode's provider config, Aider's
``--openai-api-base``). The agent's ``model`` is what it asks the gateway for: a route of
``serve.models`` or a ``provider/model``.

Which gateway: one already answering at ``serve.host:serve.port`` is reused; otherwise one
is started for this process on a free loopback port (``llmcore serve --port 0`` with the
same config file) and stopped when the process exits, so nothing outlives llmcore. The key
the agent sends is its ``api_key_env`` (a gateway key of ``serve.keys``) when set, else a
placeholder a keyless loopback gateway ignores.
"""

from __future__ import annotations

import atexit
import copy
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from typing import TYPE_CHECKING

import attrs

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..agents import Agent
    from ..config import Config

KEY_VAR = "LLMCORE_GATEWAY_KEY"
PLACEHOLDER_KEY = "llmcore-local-gateway"
START_TIMEOUT_S = 60.0

_lock = threading.Lock()
_started: dict[str, tuple[subprocess.Popen[str], str]] = {}  # config file → (process, url)


def _is_gateway(url: str, timeout: float = 0.5) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=timeout) as r:
            return r.status == 200 and "in_flight" in json.load(r)
    except (OSError, ValueError):
        return False


def gateway_url(cfg: Config) -> str:
    """The base URL (no ``/v1``) of a gateway serving ``cfg``."""
    host = cfg.serve.host if cfg.serve.host not in ("0.0.0.0", "::") else "127.0.0.1"
    configured = f"http://{host}:{cfg.serve.port}"
    if _is_gateway(configured):
        return configured
    source = cfg.source or ""
    with _lock:
        got = _started.get(source)
        if got is not None and got[0].poll() is None:
            return got[1]
        proc, url = _start(source)
        _started[source] = (proc, url)
        return url


def _start(source: str) -> tuple[subprocess.Popen[str], str]:
    from .. import sinks

    log = sinks.data_dir() / "gateway.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    argv = [sys.executable, "-m", "llmcore", "serve", "--host", "127.0.0.1", "--port", "0"]
    if source:
        argv += ["--config", source]
    with os.fdopen(fd, "a") as err:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.wait(timeout=30)
        raise ConfigError(
            f"could not start the gateway for via_gateway agents (exit {proc.returncode})",
            hint=f"see {log}; try `llmcore serve`",
        )
    url = line.split("listening on ", 1)[1].split()[0]
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _is_gateway(url):
        if time.monotonic() > deadline or proc.poll() is not None:
            _stop(proc)
            raise ConfigError(
                "the gateway for via_gateway agents did not become healthy", hint=f"see {log}"
            )
        time.sleep(0.05)
    return proc, url


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass


@atexit.register
def stop_started() -> None:
    """Stop every gateway this process started (at exit; tests call it too)."""
    with _lock:
        for proc, _ in _started.values():
            _stop(proc)
        _started.clear()


def through_gateway(config: Config, agent: Agent) -> Agent:
    """A copy of ``agent`` whose endpoint is the gateway (the original is untouched)."""
    url = gateway_url(config) + "/v1"
    cfg = agent.config
    env = dict(cfg.env)
    key_env = cfg.api_key_env
    if not key_env:
        key_env = KEY_VAR
        env[KEY_VAR] = PLACEHOLDER_KEY
    routed = copy.copy(agent)
    routed.config = attrs.evolve(cfg, base_url=url, api_key_env=key_env, env=env)
    return routed
