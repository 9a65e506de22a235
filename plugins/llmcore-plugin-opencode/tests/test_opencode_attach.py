"""OpenCode's seed options against the real program: ``attach`` (a URL, or ``auto``: one
``opencode serve`` per client, reused, stopped with it) and ``continue_session``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import llmcore
import pytest
from agent_env import agent_fake, alive, real_agent_yaml
from llmcore.config import parse_config
from llmcore.testing.agents import check_run
from llmcore.testing.fakes import Reply
from llmcore_opencode import server as oc_server

pytestmark = pytest.mark.real_agent
KEY = "sk-test-opencode-attach-0123456789"


@pytest.fixture
def fake() -> Iterator[Any]:
    with agent_fake(side_text="A title") as f:  # type: ignore[attr-defined]
        yield f


def _client(fake: Any, monkeypatch: pytest.MonkeyPatch, **options: Any) -> llmcore.Client:
    monkeypatch.setenv("LLMCORE_TEST_KEY", KEY)
    return llmcore.Client(
        parse_config(real_agent_yaml("opencode", "opencode", fake.base_url, options=options))
    )


def test_attach_auto_starts_one_server_reuses_it_continues_and_stops_it(
    fake: Any, agent_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _client(fake, monkeypatch, attach="auto", continue_session=True)
    target = agent_repo / "hello.txt"
    fake.push(
        Reply(
            text="",
            tool_calls=[
                {"name": "write", "arguments": {"filePath": str(target), "content": "hello\n"}}
            ],
        ),
        Reply(text="Created hello.txt."),
    )
    first = client.run_agent("opencode", "create hello.txt", cwd=agent_repo)
    check_run(first, output="Created hello.txt.", files=["hello.txt"])
    assert first.session_id and first.session_id.startswith("ses_")
    servers = oc_server.running_servers()
    assert len(servers) == 1

    fake.push(Reply(text="It says hello."))
    second = client.run_agent("opencode", "what does it say?", cwd=agent_repo)
    assert second.success and second.output == "It says hello."
    assert oc_server.running_servers() == servers  # the same server, reused
    assert second.session_id == first.session_id  # --continue: the same session
    history = json.dumps(fake.tool_requests()[-1]["messages"])
    assert "create hello.txt" in history

    pid = next(iter(oc_server._servers.values())).proc.pid
    client.close()
    assert oc_server.running_servers() == [] and not alive(pid)


def test_attach_to_a_running_server_by_url(
    fake: Any, agent_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server the user runs (started here the way a user would, with the same config).
    starter = _client(fake, monkeypatch)
    agent = starter.runtime.agent("opencode")
    inv = agent.build(
        llmcore.AgentTask(prompt="x", cwd=str(agent_repo), mode="auto_edit", model="fake-model")
    )
    serve = oc_server.Server(agent.executable(), agent.environment(inv.env), str(agent_repo))
    try:
        client = _client(fake, monkeypatch, attach=serve.url)
        fake.push(Reply(text="Attached answer."))
        result = client.run_agent("opencode", "say something", cwd=agent_repo)
        assert result.success and result.output == "Attached answer."
        assert result.usage and result.usage.input_tokens > 0
        client.close()
        assert serve.alive()  # not ours to stop
    finally:
        serve.stop()


def test_attach_must_be_a_url_or_auto(
    fake: Any, agent_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _client(fake, monkeypatch, attach="localhost:4096")
    with pytest.raises(llmcore.ConfigError, match="URL or auto"):
        client.run_agent("opencode", "x", cwd=agent_repo)
