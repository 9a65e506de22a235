"""The real ``gemini`` program against the scripted Gemini fake: edit, resume, 401, timeout."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import llmcore
import pytest
from agent_env import git_repo
from llmcore.config import AgentConfig
from llmcore.testing.fakes import GeminiFake, Reply
from llmcore_gemini.agent import GeminiAgent

pytestmark = pytest.mark.real_agent
KEY_VAR = "LLMCORE_TEST_GEMINI_KEY"
KEY = "AIzaFakeTestKey0123456789abcdefghij"


@pytest.fixture
def fake() -> Iterator[GeminiFake]:
    with GeminiFake() as server:
        yield server


@pytest.fixture
def client(fake: GeminiFake, npm_program: Callable[[str], tuple[str, str]],
           monkeypatch: pytest.MonkeyPatch) -> Iterator[llmcore.Client]:
    exe, path = npm_program("gemini")
    monkeypatch.setenv(KEY_VAR, KEY)
    agent = GeminiAgent(AgentConfig(
        name="gemini", plugin="gemini", command=exe, base_url=fake.url,
        api_key_env=KEY_VAR, model="gemini-fake-1", mode="auto_edit", timeout=90,
        env={"PATH": path}))
    with llmcore.Client(agents=[agent]) as c:
        yield c


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A git repository with one committed file: files changed are judged by git."""
    return git_repo(tmp_path / "work", {"README.md": "# demo\n"})


def _function_responses(body: dict) -> list[dict]:
    return [p["functionResponse"] for c in body.get("contents", [])
            for p in c.get("parts", []) if "functionResponse" in p]


def test_writes_a_file_then_resumes(client: llmcore.Client, fake: GeminiFake,
                                    work: Path) -> None:
    target = work / "hello.py"
    fake.push(
        Reply(text="", usage=(100, 7), tool_calls=[{
            "name": "write_file",
            "arguments": {"file_path": str(target), "content": "print('hi')\n"}}]),
        Reply(text="Wrote hello.py.", usage=(120, 5)),
    )
    result = client.run_agent("gemini", "create hello.py", cwd=work)

    assert result.success, result.error
    assert result.output == "Wrote hello.py."
    assert target.read_text() == "print('hi')\n"
    assert result.files_modified == ["hello.py"]
    assert result.usage is not None
    assert (result.usage.input_tokens, result.usage.output_tokens) == (220, 12)
    assert result.session_id
    turns = fake.generate_requests()
    assert len(turns) == 2
    assert all(t.path == "/v1beta/models/gemini-fake-1:streamGenerateContent" for t in turns)
    assert all({k.lower(): v for k, v in t.headers.items()}.get("x-goog-api-key") == KEY
               for t in turns)
    responses = _function_responses(turns[1].json)
    assert [r["name"] for r in responses] == ["write_file"]

    fake.push(Reply(text="Still here.", usage=(300, 3)))
    again = client.run_agent("gemini", "what did you write?", cwd=work,
                             resume=result.session_id)
    assert again.success, again.error
    assert again.output == "Still here."
    assert again.session_id == result.session_id
    history = json.dumps(fake.generate_requests()[2].json["contents"])
    assert "create hello.py" in history and "write_file" in history


def test_refused_key_fails_fast_with_auth_error(client: llmcore.Client, fake: GeminiFake,
                                                work: Path) -> None:
    fake.push(Reply(status=401, error="API key not valid. Please pass a valid API key."))
    t0 = time.monotonic()
    with pytest.raises(llmcore.AgentAuthError) as info:
        client.run_agent("gemini", "hi", cwd=work)
    assert time.monotonic() - t0 < 30
    assert "401" in str(info.value)
    assert KEY_VAR in (info.value.hint or "")
    assert KEY not in str(info.value) and KEY not in repr(info.value)


def test_slow_server_times_out(client: llmcore.Client, fake: GeminiFake, work: Path) -> None:
    fake.push(Reply(delay=30))
    t0 = time.monotonic()
    with pytest.raises(llmcore.AgentTimeoutError):
        client.run_agent("gemini", "hi", cwd=work, timeout=6)
    assert time.monotonic() - t0 < 14


def test_prompt_that_looks_like_a_flag_is_sent_as_text(client: llmcore.Client, fake: GeminiFake,
                                                       work: Path) -> None:
    fake.push(Reply(text="It is a prompt."))
    result = client.run_agent("gemini", "--version -h", cwd=work, mode="read_only")
    assert result.success, result.error
    assert result.output == "It is a prompt."
    assert "--version -h" in fake.requests[-1].body.decode()


def test_server_down_gives_connection_error(client: llmcore.Client, fake: GeminiFake,
                                            work: Path) -> None:
    fake.stop()
    t0 = time.monotonic()
    with pytest.raises(llmcore.AgentConnectionError) as info:
        client.run_agent("gemini", "hi", cwd=work, timeout=60)
    assert time.monotonic() - t0 < 30
    assert "base_url" in (info.value.hint or "")
