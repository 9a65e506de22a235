"""The real ``claude`` program against the scripted Anthropic fake: edit, resume, 401, timeout."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import llmcore
import pytest
from agent_env import check_cli_runs_agent, real_agent_client
from llmcore.testing.agents import RealAgentChecks, check_run, header, run_resumed
from llmcore.testing.fakes import AnthropicFake, Reply
from llmcore_claude_code.agent import ClaudeCodeAgent

pytestmark = pytest.mark.real_agent
KEY_VAR = "LLMCORE_TEST_ANTHROPIC_KEY"
KEY = "sk-ant-test-0123456789abcdef"


@pytest.fixture
def fake() -> Iterator[AnthropicFake]:
    with AnthropicFake() as server:
        yield server


@pytest.fixture
def client(
    fake: AnthropicFake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[llmcore.Client]:
    home = tmp_path / "home"  # Claude Code's own settings and sessions: not the user's
    home.mkdir()
    with real_agent_client(
        ClaudeCodeAgent,
        name="claude",
        program="claude",
        base_url=fake.url,
        key_env=KEY_VAR,
        key=KEY,
        model="claude-fake-1",
        monkeypatch=monkeypatch,
        env={"HOME": str(home)},
    ) as c:
        yield c


def test_writes_a_file_then_resumes(
    client: llmcore.Client, fake: AnthropicFake, agent_repo: Path
) -> None:
    target = agent_repo / "hello.py"
    fake.push(
        Reply(
            text="",
            usage=(100, 7),
            tool_calls=[
                {
                    "name": "Write",
                    "id": "toolu_write_1",
                    "arguments": {"file_path": str(target), "content": "print('hi')\n"},
                }
            ],
        ),
        Reply(text="Wrote hello.py.", usage=(120, 5)),
    )
    result = client.run_agent("claude", "create hello.py", cwd=agent_repo)

    check_run(result, output="Wrote hello.py.", files=["hello.py"], usage=(220, 12))
    assert target.read_text() == "print('hi')\n"
    assert result.cost_usd is not None and result.cost_usd >= 0
    turns = fake.message_requests()
    assert len(turns) == 2
    assert all(header(t, "x-api-key") == KEY for t in turns)
    assert turns[0].json["model"] == "claude-fake-1"
    # Claude ran the Write tool and sent its result back on the second turn.
    results = [
        b
        for m in turns[1].json["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result"
    ]
    assert [r["tool_use_id"] for r in results] == ["toolu_write_1"]
    assert not results[0].get("is_error")

    run_resumed(
        client,
        "claude",
        result,
        fake,
        agent_repo,
        answer="Still here.",
        prompt="what did you write?",
        usage=(300, 3),
    )
    # The resumed turn carries the first run's conversation.
    history = json.dumps(fake.message_requests()[2].json["messages"])
    assert "create hello.py" in history and "toolu_write_1" in history


class TestClaudeFailures(RealAgentChecks):
    """Refused key, slow server, flag-like prompt, server down (llmcore.testing.agents)."""

    agent, key, key_env = "claude", KEY, KEY_VAR
    auth_error_text = "invalid x-api-key"

    def after_auth_error(self, err: llmcore.AgentAuthError, fake: Any) -> None:
        assert len(fake.message_requests()) == 1  # no retries


def test_cli_lists_and_runs_claude(tmp_path: Path, fake: AnthropicFake) -> None:
    home = tmp_path / "cli-home"
    home.mkdir()

    def script(repo: Path) -> None:
        fake.push(
            Reply(
                text="",
                usage=(50, 4),
                tool_calls=[
                    {
                        "name": "Write",
                        "id": "toolu_cli_1",
                        "arguments": {"file_path": str(repo / "a.txt"), "content": "a\n"},
                    }
                ],
            ),
            Reply(text="Wrote a.txt", usage=(60, 2)),
        )

    check_cli_runs_agent(
        tmp_path,
        fake,
        name="claude-code",
        key=KEY,
        version="2.1.330",
        script=script,
        prompt="write a.txt",
        files=["a.txt"],
        output="Wrote a.txt",
        program="claude",
        base_url=fake.url,
        key_env=KEY_VAR,
        model="claude-fake-1",
        env={"HOME": str(home)},
    )
