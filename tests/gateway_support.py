"""Start a real ``llmcore serve`` (a subprocess, as users run it) for the gateway tests.

``GatewayProcess(tmp_path, config_yaml, workers=N).start()`` writes the config, runs
``python -m llmcore serve --port 0 --config FILE`` in its own session, reads the address
the supervisor prints and waits for ``/health``. ``stop()`` sends SIGTERM and waits for the
whole group; a gateway that does not stop is killed and the test fails. The server's
stderr goes to a file the failure messages quote.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llmcore.testing.fakes import OpenAIFake
from llmcore.testing.fakes.base import Reply

START_TIMEOUT_S = 60.0


class GatewayProcess:
    def __init__(
        self,
        tmp_path: Path,
        config: str,
        *,
        workers: int = 1,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
    ) -> None:
        self.dir = tmp_path
        self.config_path = tmp_path / "gateway.yaml"
        self.config_path.write_text(config, encoding="utf-8")
        self.workers = workers
        self.env = {**os.environ, **(env or {})}
        self.args = args or []
        self.log = tmp_path / "gateway.stderr"
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> GatewayProcess:
        with self.log.open("w") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "llmcore",
                    "serve",
                    "--port",
                    "0",
                    "--config",
                    str(self.config_path),
                    "--workers",
                    str(self.workers),
                    *self.args,
                ],
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.DEVNULL,
                text=True,
                env=self.env,
                start_new_session=True,
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.proc.wait(timeout=30)
            raise AssertionError(
                f"llmcore serve did not start ({self.proc.returncode}): {line!r}\n{self.stderr()}"
            )
        self.url = line.split("listening on ", 1)[1].split()[0]
        self.wait_health()
        return self

    def wait_health(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"gateway not healthy after {START_TIMEOUT_S} s\n{self.stderr()}")

    def stderr(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any, str]:
        import json
        import urllib.error

        req = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                text = r.read().decode()
                status = r.status
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            status = e.code
        try:
            return status, json.loads(text), text
        except ValueError:
            return status, None, text

    def post(
        self, path: str, body: Any, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        import json
        import urllib.error

        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read() or b"null"), dict(r.headers)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = raw.decode(errors="replace")
            return e.code, parsed, dict(e.headers)

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            raise AssertionError(
                f"llmcore serve did not stop on SIGTERM\n{self.stderr()}"
            ) from None

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            if self.proc is not None and self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)


def provider_yaml(name: str, base_url: str, models: list[str], **extra: Any) -> str:
    more = "".join(f", {k}: {v}" for k, v in extra.items())
    return (
        f'  {name}: {{plugin: openai, base_url: "{base_url}", '
        f"models: [{', '.join(models)}], retry: {{max_attempts: 1}}{more}}}\n"
    )


# -- fixtures the gateway test modules import (module-scoped: one gateway per module) --
@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, OpenAIFake]]:
    broken = OpenAIFake(default=Reply(status=500, error="upstream exploded")).start()
    tools = OpenAIFake().start()
    yield {"broken": broken, "tools": tools}
    broken.stop()
    tools.stop()


def _config(tmp: Path, upstreams: dict[str, OpenAIFake], llama_url: str | None) -> str:
    return (
        "providers:\n"
        + provider_yaml("broken", upstreams["broken"].base_url, ["gemma3", "fake-model"])
        + (provider_yaml("llama", llama_url + "/v1", ["gemma3"]) if llama_url else "")
        + provider_yaml("tools", upstreams["tools"].base_url, ["fake-model"])
        + "routing: {state: memory}\n"
        + f"metrics: {{sinks: [sqlite], sqlite: {{path: {tmp / 'metrics.db'}}}}}\n"
        + "serve:\n  models:\n"
        + ("    chat: [broken/gemma3, llama/gemma3]\n" if llama_url else "")
        + "    coder: [broken/fake-model, tools/fake-model]\n"
    )


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstreams: dict[str, OpenAIFake]
) -> Iterator[GatewayProcess]:
    """Two workers in front of scripted fakes (tool calls, faults)."""
    tmp = tmp_path_factory.mktemp("gw-openai")
    with GatewayProcess(tmp, _config(tmp, upstreams, None), workers=2) as gw:
        yield gw


@pytest.fixture(scope="module")
def llama_gateway(
    tmp_path_factory: pytest.TempPathFactory, llama_server: str, upstreams: dict[str, OpenAIFake]
) -> Iterator[GatewayProcess]:
    """Two workers whose ``chat`` route is [a provider answering 500, real llama.cpp]."""
    tmp = tmp_path_factory.mktemp("gw-llama")
    with GatewayProcess(tmp, _config(tmp, upstreams, llama_server), workers=2) as gw:
        yield gw
