"""The real ``codex`` program against the scripted Responses fake: edit, resume, 401, timeout."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import llmcore
import pytest
from agent_env import git_repo
from llmcore.config import AgentConfig
from llmcore.testing.fakes import Reply, ResponsesFake
from llmcore_codex.agent import CodexAgent

pytestmark = pytest.mark.real_agent
KEY_VAR = "LLMCORE_TEST_CODEX_KEY"
KEY = "sk-test-codex-0123456789abcdef"


@pytest.fixture
def fake() -> Iterator[ResponsesFake]:
    with ResponsesFake() as server:
        yield server


@pytest.fixture
def client(fake: ResponsesFake, npm_program: Callable[[str], tuple[str, str]],
           monkeypatch: pytest.MonkeyPatch) -> Iterator[llmcore.Client]:
    exe, path = npm_program("codex")
    monkeypatch.setenv(KEY_VAR, KEY)
    agent = CodexAgent(AgentConfig(
        name="codex", plugin="codex", command=exe, base_url=fake.base_url,
        api_key_env=KEY_VAR, model="fake-model", mode="auto_edit", timeout=90,
        env={"PATH": path}))
    with llmcore.Client(agents=[agent]) as c:
        yield c


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A git repository with one committed file: files changed are judged by git."""
    return git_repo(tmp_path / "work", {"README.md": "# demo\n"})


def _function_outputs(body: dict) -> list[dict]:
    return [i for i in body.get("input", []) if i.get("type") == "function_call_output"]


def test_writes_a_file_then_resumes(client: llmcore.Client, fake: ResponsesFake,
                                    work: Path) -> None:
    fake.push(
        Reply(text="", usage=(100, 7), tool_calls=[{
            "name": "exec_command", "id": "call_write_1",
            "arguments": {"cmd": "printf 'print(1)\\n' > hello.py", "workdir": str(work),
                          "tty": False}}]),
        Reply(text="Wrote hello.py.", usage=(120, 5)),
    )
    result = client.run_agent("codex", "create hello.py", cwd=work)

    assert result.success, result.error
    assert result.output == "Wrote hello.py."
    assert (work / "hello.py").read_text() == "print(1)\n"
    assert result.files_modified == ["hello.py"]
    assert result.usage is not None
    assert (result.usage.input_tokens, result.usage.output_tokens) == (220, 12)
    assert result.session_id
    turns = fake.response_requests()
    assert len(turns) == 2
    assert all({k.lower(): v for k, v in t.headers.items()}.get("authorization")
               == f"Bearer {KEY}" for t in turns)
    assert turns[0].json["model"] == "fake-model"
    outputs = _function_outputs(turns[1].json)
    assert [o["call_id"] for o in outputs] == ["call_write_1"]

    fake.push(Reply(text="Still here.", usage=(300, 3)))
    again = client.run_agent("codex", "what did you write?", cwd=work,
                             resume=result.session_id)
    assert again.success, again.error
    assert again.output == "Still here."
    assert again.session_id == result.session_id
    history = json.dumps(fake.response_requests()[2].json["input"])
    assert "create hello.py" in history and "call_write_1" in history


def test_refused_key_fails_fast_with_auth_error(client: llmcore.Client, fake: ResponsesFake,
                                                work: Path) -> None:
    fake.push(Reply(status=401, error="Incorrect API key provided"))
    t0 = time.monotonic()
    with pytest.raises(llmcore.AgentAuthError) as info:
        client.run_agent("codex", "hi", cwd=work)
    assert time.monotonic() - t0 < 30
    assert "401" in str(info.value)
    assert KEY_VAR in (info.value.hint or "")
    assert KEY not in str(info.value) and KEY not in repr(info.value)


def test_slow_server_times_out(client: llmcore.Client, fake: ResponsesFake, work: Path) -> None:
    fake.push(Reply(delay=30))
    t0 = time.monotonic()
    with pytest.raises(llmcore.AgentTimeoutError):
        client.run_agent("codex", "hi", cwd=work, timeout=4)
    assert time.monotonic() - t0 < 12


def test_prompt_that_looks_like_a_flag_is_sent_as_text(client: llmcore.Client, fake: ResponsesFake,
                                                       work: Path) -> None:
    fake.push(Reply(text="It is a prompt."))
    result = client.run_agent("codex", "--version -h", cwd=work, mode="read_only")
    assert result.success, result.error
    assert result.output == "It is a prompt."
    assert "--version -h" in fake.requests[-1].body.decode()


def test_server_down_gives_connection_error(client: llmcore.Client, fake: ResponsesFake,
                                            work: Path) -> None:
    fake.stop()
    t0 = time.monotonic()
    with pytest.raises(llmcore.AgentConnectionError) as info:
        client.run_agent("codex", "hi", cwd=work, timeout=60)
    assert time.monotonic() - t0 < 30
    assert "base_url" in (info.value.hint or "")
