"""Qwen Code's ``auth`` option: a DashScope key with no base_url reaches the real program (its
DashScope endpoint moved onto a fake), OAuth uses the user's own login, bad combinations are
clear config errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import llmcore
import pytest
from agent_env import agent_fake, real_program
from llmcore.config import AgentConfig
from llmcore.testing.agents import header
from llmcore.testing.fakes import Reply
from llmcore_qwen import QwenAgent

KEY = "sk-dashscope-test-0123456789abcdef"


@pytest.fixture
def fake() -> Iterator[Any]:
    with agent_fake(side_text="noted") as f:  # type: ignore[attr-defined]
        yield f


def _agent(**cfg: Any) -> QwenAgent:
    exe, path = real_program("qwen")
    return QwenAgent(
        AgentConfig(
            name="qwen",
            plugin="qwen",
            command=exe,
            timeout=120,
            mode="auto_edit",
            env={"PATH": path},
            **cfg,
        )
    )


@pytest.mark.real_agent
def test_api_key_auth_sends_the_dashscope_key_without_a_base_url(
    fake: Any, agent_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    agent = _agent(
        api_key_env="DASHSCOPE_API_KEY",
        model="qwen-plus",
        options={"auth": "api_key", "dashscope_url": fake.base_url},
    )
    fake.push(Reply(text="Hello from DashScope."))
    result = llmcore.Client(agents=[agent]).run_agent("qwen", "hi", cwd=agent_repo)
    assert result.success and result.output == "Hello from DashScope."
    assert header(fake.requests[-1], "authorization") == f"Bearer {KEY}"
    assert fake.tool_requests()[-1]["model"] == "qwen-plus"


@pytest.mark.real_agent
def test_auth_choices_build_the_right_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = llmcore.AgentTask(prompt="hi", cwd=str(tmp_path), mode="auto_edit")
    oauth = _agent(options={"auth": "oauth"}).build(task)
    assert oauth.argv[oauth.argv.index("--auth-type") + 1] == "qwen-oauth"
    assert "HOME" not in oauth.env  # the user's own ~/.qwen holds the OAuth login
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    key = _agent(api_key_env="DASHSCOPE_API_KEY").build(task)  # inferred: api_key
    assert key.env["OPENAI_BASE_URL"].startswith("https://dashscope.aliyuncs.com/")
    assert key.env["OPENAI_API_KEY"] == KEY and KEY not in " ".join(key.argv)
    with pytest.raises(llmcore.ConfigError, match="needs api_key_env"):
        _agent(options={"auth": "api_key"}).build(task)
    with pytest.raises(llmcore.ConfigError, match="needs base_url"):
        _agent(options={"auth": "openai"}).build(task)
    with pytest.raises(llmcore.ConfigError, match="unknown auth"):
        _agent(options={"auth": "password"}).build(task)
