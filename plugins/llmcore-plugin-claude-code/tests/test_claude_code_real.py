"""The real ``claude`` program against the scripted Anthropic fake: edit, resume, 401, timeout."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import llmcore
import pytest
from agent_env import git_repo
from llmcore.config import AgentConfig
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
def client(fake: AnthropicFake, npm_program: Callable[[str], tuple[str, str]],
           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[llmcore.Client]:
    exe, path = npm_program("claude")
    monkeypatch.setenv(KEY_VAR, KEY)
    home = tmp_path / "home"
    home.mkdir()
    agent = ClaudeCodeAgent(AgentConfig(
        name="claude", plugin="claude-code", command=exe, base_url=fake.url,
        api_key_env=KEY_VAR, model="claude-fake-1", mode="auto_edit", timeout=90,
        env={"PATH": path, "HOME": str(home)}))
    with llmcore.Client(agents=[agent]) as c:
        yield c


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A git repository with one committed file: files changed are judged by git."""
    return git_repo(tmp_path / "work", {"README.md": "# demo\n"})


def test_writes_a_file_then_resumes(client: llmcore.Client, fake: AnthropicFake,
                                    work: Path) -> None:
    target = work / "hello.py"
    fake.push(
        Reply(text="", usage=(100, 7), tool_calls=[{
            "name": "Write", "id": "toolu_write_1",
            "arguments": {"file_path": str(target), "content": "print('hi')\n"}}]),
        Reply(text="Wrote hello.py.", usage=(120, 5)),
    )
    result = client.run_agent("claude", "create hello.py", cwd=work)

    assert result.success, result.error
    assert result.output == "Wrote hello.py."
    assert target.read_text() == "print('hi')\n"
    assert result.files_modified == ["hello.py"]
    assert result.usage is not None
    assert (result.usage.input_tokens, result.usage.output_tokens) == (220, 12)
    assert result.cost_usd is not None and result.cost_usd >= 0
    assert result.session_id
    turns = fake.message_requests()
    assert len(turns) == 2
    assert all({k.lower(): v for k, v in t.headers.items()}.get("x-api-key") == KEY
               for t in turns)
    assert turns[0].json["model"] == "claude-fake-1"
    # Claude ran the Write tool and sent its result back on the second turn.
    results = [b for m in turns[1].json["messages"] if isinstance(m["content"], list)
               for b in m["content"] if b.get("type") == "tool_result"]
    assert [r["tool_use_id"] for r in results] == ["toolu_write_1"]
    assert not results[0].get("is_error")

    fake.push(Reply(text="Still here.", usage=(300, 3)))
    again = client.run_agent("claude", "what did you write?", cwd=work,
                             resume=result.session_id)
    assert again.success, again.error
    assert again.output == "Still here."
    assert again.session_id == result.session_id
    # The resumed turn carries the first run's conversation.
    history = json.dumps(fake.message_requests()[2].json["messages"])
    assert "create hello.py" in history and "toolu_write_1" in history


def test_refused_key_fails_fast_with_auth_error(client: llmcore.Client, fake: AnthropicFake,
                                                work: Path) -> None:
    fake.push(Reply(status=401, error="invalid x-api-key"))
    t0 = time.monotonic()
    with pytest.raises(llmcore.AgentAuthError) as info:
        client.run_agent("claude", "hi", cwd=work)
    assert time.monotonic() - t0 < 30
    assert "401" in str(info.value)
    assert KEY_VAR in (info.value.hint or "")
    assert KEY not in str(info.value) and KEY not in repr(info.value)
    assert len(fake.message_requests()) == 1  # no retries


def test_slow_server_times_out(client: llmcore.Client, fake: AnthropicFake, work: Path) -> None:
    fake.push(Reply(delay=30))
    t0 = time.monotonic()
    with pytest.raises(llmcore.AgentTimeoutError):
        client.run_agent("claude", "hi", cwd=work, timeout=4)
    assert time.monotonic() - t0 < 12


def test_prompt_that_looks_like_a_flag_is_sent_as_text(client: llmcore.Client, fake: AnthropicFake,
                                                       work: Path) -> None:
    fake.push(Reply(text="It is a prompt."))
    result = client.run_agent("claude", "--version -h", cwd=work, mode="read_only")
    assert result.success, result.error
    assert result.output == "It is a prompt."
    assert "--version -h" in fake.requests[-1].body.decode()


def test_server_down_gives_connection_error(client: llmcore.Client, fake: AnthropicFake,
                                            work: Path) -> None:
    fake.stop()
    t0 = time.monotonic()
    with pytest.raises(llmcore.AgentConnectionError) as info:
        client.run_agent("claude", "hi", cwd=work, timeout=60)
    assert time.monotonic() - t0 < 30
    assert "base_url" in (info.value.hint or "")
