"""``opencode serve`` started by llmcore for ``attach: auto``: one per configuration, reused.

OpenCode's start-up (~4-12 s) dominates a trivial run. With ``attach: auto`` llmcore starts
one headless server on a free loopback port the first time it is needed, every run attaches
to it (``opencode run --attach URL``), and it is stopped when the client closes, or at exit.
The server gets the same environment and config a run would (endpoint, permissions), so one
server is kept per distinct configuration (a mode change is a different permission set).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import select
import signal
import socket
import subprocess
import threading
import time

import llmcore

_LISTEN = re.compile(rb"listening on (http://127\.0\.0\.1:\d+)")
_lock = threading.Lock()
_servers: dict[tuple[str, ...], Server] = {}
#: Seconds the server may take to say it listens (a cold start on a busy machine).
START_TIMEOUT = 120.0


class Server:
    """One running ``opencode serve`` in a process group of its own."""

    def __init__(self, exe: str, env: dict[str, str], cwd: str) -> None:
        port = _free_port()
        self.proc = subprocess.Popen(
            [exe, "serve", "--port", str(port), "--hostname", "127.0.0.1"],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.url = self._wait_listening(port)
        # Keep reading its output so a chatty server never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True, name="llmcore-opencode-serve").start()

    def _wait_listening(self, port: int) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        seen = b""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            seen += chunk
            m = _LISTEN.search(seen)
            if m:
                return m.group(1).decode()
        self.stop()
        tail = seen.decode("utf-8", "replace").strip()[-400:]
        raise llmcore.AgentError(
            f"opencode serve did not start on 127.0.0.1:{port}: {tail or 'no output'}",
            hint="run `opencode serve` by hand to see why, or set options.attach: null",
        )

    def _drain(self) -> None:
        stream = self.proc.stdout
        with contextlib.suppress(OSError, ValueError):
            while stream is not None and stream.read(65536):
                pass

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM its process group, SIGKILL after 3 s."""
        for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever it left in its group


def _free_port() -> int:
    # `opencode serve --port 0` falls back to its fixed default (4096), which a second
    # server would collide with: ask the system for a free port instead.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_for(owner: str, exe: str, env: dict[str, str], cwd: str) -> str:
    """The URL of the server for this configuration, started when there is none yet."""
    key = (
        owner,
        exe,
        *sorted(
            f"{k}={v}"
            for k, v in env.items()
            if k.startswith(("OPENCODE_", "LLMCORE_OPENCODE", "XDG_", "HOME"))
        ),
    )
    with _lock:
        server = _servers.get(key)
        if server is not None and server.alive():
            return server.url
        server = Server(exe, env, cwd)
        _servers[key] = server
        return server.url


def stop_servers(owner: str | None = None) -> int:
    """Stop the servers started for ``owner`` (an agent name), or all of them."""
    with _lock:
        keys = [k for k in _servers if owner is None or k[0] == owner]
        servers = [_servers.pop(k) for k in keys]
    for s in servers:
        s.stop()
    return len(servers)


def running_servers() -> list[str]:
    with _lock:
        return [s.url for s in _servers.values() if s.alive()]


atexit.register(stop_servers)
