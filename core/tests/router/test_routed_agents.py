"""An agent the router picked to answer a chat honours what a direct ``run_agent`` does:
``via_gateway``, ``on_event=``, ``cancel=``, and an async chat's cancellation stopping its
processes (router/agents_as_providers.py, agent_dispatch.py)."""

from __future__ import annotations

import asyncio
import contextvars
import json
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import llmcore
import pytest
from llmcore import hookimpl
from llmcore.errors import AgentCancelledError, BadRequestError
from llmcore.router.agents_as_providers import run_controls
from llmcore.testing import StaticProvider


class ScriptAgent(llmcore.Agent):
    """Runs ``python SCRIPT -- PROMPT`` (the script is its ``args``); tells the program its
    endpoint (``base_url``) in ``AGENT_BASE_URL``."""

    type_name = "script-agent"
    program = "python3"

    def build(self, task: llmcore.AgentTask) -> llmcore.Invocation:
        return llmcore.Invocation(
            argv=[str(self.config.command), *task.args, "--", task.prompt],
            env={"AGENT_BASE_URL": self.config.base_url or "none"},
            cwd=task.cwd,
        )


class Plugin:
    @hookimpl
    def llmcore_register_providers(self) -> list[Any]:
        return [StaticProvider]

    @hookimpl
    def llmcore_register_agents(self) -> list[Any]:
        return [ScriptAgent]


def script(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "agent.py"
    p.write_text("import json, os, sys, time\n" + textwrap.dedent(body))
    return p


def config(program: Path, agent_extra: str = "", top: str = "") -> str:
    return (
        "providers:\n"
        "  api: {plugin: static, reply: from-api, models: [m1]}\n"
        "agents:\n"
        f"  coder: {{plugin: script-agent, command: {sys.executable}, args: [{program}], "
        "serve_prompts: true"
        f"{agent_extra}}}\n"
        "routing: {state: memory, prefer: cli}\n"
        "metrics: {enabled: false}\n" + top
    )


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] != b"Z"


def wait_for(path: Path, within: float = 30.0) -> str:
    deadline = time.monotonic() + within
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.02)
    return path.read_text()


SLOW = """
open(os.environ["PID_FILE"], "w").write(str(os.getpid()))
print(json.dumps({"type": "started"}), flush=True)
time.sleep(60)
print("too late")
"""


def test_on_event_reaches_the_caller_through_the_router(make_client: Any, tmp_path: Path) -> None:
    program = script(
        tmp_path,
        """
        for n in (1, 2):
            print(json.dumps({"type": "step", "n": n}), flush=True)
        print("done")
        """,
    )
    client = make_client(config(program), Plugin())
    events: list[dict[str, Any]] = []
    resp = client.chat("fix it", on_event=events.append)
    assert resp.provider == "coder", resp.attempts
    assert "done" in resp.content
    assert [e.get("n") for e in events if e.get("type") == "step"] == [1, 2]


def test_cancel_stops_a_routed_agent_and_nothing_fails_over(
    make_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "pid"
    monkeypatch.setenv("PID_FILE", str(pid_file))
    client = make_client(config(script(tmp_path, SLOW)), Plugin())
    cancel = threading.Event()

    def on_event(ev: dict[str, Any]) -> None:
        if ev.get("type") == "started":
            cancel.set()

    t0 = time.monotonic()
    with pytest.raises(AgentCancelledError, match="run cancelled"):
        client.chat("fix it", on_event=on_event, cancel=cancel)
    assert time.monotonic() - t0 < 30  # not the script's 60 s sleep
    assert not alive(int(pid_file.read_text()))
    # A cancelled chat is the caller's decision: the API provider behind it is never asked.
    assert client.runtime.providers["api"].requests == []


async def test_cancelling_an_async_routed_chat_stops_the_agent(
    make_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "pid"
    monkeypatch.setenv("PID_FILE", str(pid_file))
    client = make_client(config(script(tmp_path, SLOW)), Plugin(), async_=True)
    task = asyncio.create_task(client.chat("fix it"))
    pid = int(await asyncio.to_thread(wait_for, pid_file))
    assert alive(pid)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not alive(pid)  # stopped before the cancellation reached the caller
    assert client.runtime.providers["api"].requests == []


def test_run_controls_never_reach_an_api_provider(make_client: Any, tmp_path: Path) -> None:
    program = script(tmp_path, "sys.exit(3)\n")  # the agent fails: the chat fails over
    client = make_client(config(program), Plugin())
    resp = client.chat("hi", on_event=lambda ev: None, cancel=threading.Event())
    assert resp.provider == "api" and resp.content == "from-api"
    (seen,) = client.runtime.providers["api"].requests
    assert "on_event" not in seen.extra and "cancel" not in seen.extra


def test_bad_run_controls_are_named() -> None:
    with pytest.raises(BadRequestError, match="on_event must be a callable"):
        run_controls({"on_event": "print"})
    with pytest.raises(BadRequestError, match=r"cancel must have is_set\(\)"):
        run_controls({"cancel": "yes"})
    token = threading.Event()
    assert run_controls({"on_event": print, "cancel": token}) == (print, token)


@pytest.fixture
def running_gateway() -> Iterator[int]:
    """Something answering ``/health`` like ``llmcore serve`` on a loopback port, so
    ``via_gateway`` reuses it instead of starting one."""

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"status": "ok", "in_flight": 0}).encode()
            self.send_response(200 if self.path == "/health" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


ECHO_ENDPOINT = 'print("endpoint=" + os.environ["AGENT_BASE_URL"])\n'


def test_via_gateway_points_a_routed_agent_at_the_gateway(
    make_client: Any, tmp_path: Path, running_gateway: int
) -> None:
    text = config(
        script(tmp_path, ECHO_ENDPOINT),
        ", via_gateway: true",
        f"serve: {{host: 127.0.0.1, port: {running_gateway}}}\n",
    )
    client = make_client(text, Plugin())
    resp = client.chat("fix it")
    assert resp.provider == "coder"
    assert resp.content.strip() == f"endpoint=http://127.0.0.1:{running_gateway}/v1"
    # The configured agent itself is untouched (the run got a copy).
    assert client.runtime.agents["coder"].config.base_url is None


def test_via_gateway_still_applies_to_a_direct_run(
    make_client: Any, tmp_path: Path, running_gateway: int
) -> None:
    text = config(
        script(tmp_path, ECHO_ENDPOINT),
        ", via_gateway: true",
        f"serve: {{host: 127.0.0.1, port: {running_gateway}}}\n",
    )
    client = make_client(text, Plugin())
    result = client.run_agent("coder", "fix it", cwd=tmp_path)
    assert result.output == f"endpoint=http://127.0.0.1:{running_gateway}/v1"


def test_without_via_gateway_the_agent_keeps_its_own_endpoint(
    make_client: Any, tmp_path: Path
) -> None:
    client = make_client(config(script(tmp_path, ECHO_ENDPOINT)), Plugin())
    assert client.chat("fix it").content.strip() == "endpoint=none"


WHO: contextvars.ContextVar[str | None] = contextvars.ContextVar("who", default=None)


class SeesContext:
    """An agent-run hook that notes the caller's context variable (the gateway tags a run's
    events with the asking key this way)."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []

    @hookimpl
    def llmcore_run_agent(self, call: Any) -> None:
        self.seen.append(WHO.get())


async def test_an_async_routed_run_keeps_the_callers_context(
    make_client: Any, tmp_path: Path
) -> None:
    hook = SeesContext()
    client = make_client(config(script(tmp_path, 'print("ok")\n')), Plugin(), hook, async_=True)
    WHO.set("key-1")
    resp = await client.chat("fix it")
    assert resp.provider == "coder" and hook.seen == ["key-1"]
