"""The real OpenCode (npm opencode-ai, pinned) against a scripted OpenAI Chat fake."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import llmcore
import pytest
from agent_env import agent_fake, git_repo, real_agent_yaml, run_cli
from llmcore.config import parse_config
from llmcore.testing.fakes import Reply

pytestmark = pytest.mark.real_agent
KEY = "sk-test-opencode-0123456789abcdef"


@pytest.fixture
def fake() -> Any:
    with agent_fake(side_text="A title") as f:  # type: ignore[attr-defined]
        yield f


def client_for(fake: Any, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> llmcore.Client:
    monkeypatch.setenv("LLMCORE_TEST_KEY", KEY)
    yaml = real_agent_yaml("opencode", "opencode", fake.base_url, **kw)
    return llmcore.Client(parse_config(yaml))


def test_opencode_edits_a_file_then_resumes_the_session(tmp_path: Path, fake: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    repo = git_repo(tmp_path / "repo")
    target = repo / "hello.txt"
    fake.push(Reply(text="", tool_calls=[{"name": "write", "arguments": {
                  "filePath": str(target), "content": "hello\n"}}]),
              Reply(text="Created hello.txt."))
    client = client_for(fake, monkeypatch)
    events: list[dict[str, Any]] = []
    result = client.run_agent("opencode", "create hello.txt", cwd=repo, on_event=events.append)
    assert result.success, result.error
    assert target.read_text() == "hello\n"
    assert result.output == "Created hello.txt."
    assert result.files_modified == ["hello.txt"]
    assert result.usage and result.usage.input_tokens > 0 and result.usage.output_tokens > 0
    assert result.session_id and result.exit_code == 0
    assert any(e.get("type") == "tool_use" for e in events)
    first = fake.tool_requests()[0]
    assert "write" in [t["function"]["name"] for t in first["tools"]]
    assert first["model"] == "fake-model"
    headers = {k.lower(): v for k, v in fake.requests[-1].headers.items()}
    assert headers.get("authorization") == f"Bearer {KEY}"

    fake.push(Reply(text="Resumed: hello.txt exists."))
    n = len(fake.tool_requests())
    again = client.run_agent("opencode", "what did you do?", cwd=repo, resume=result.session_id)
    assert again.success and again.output == "Resumed: hello.txt exists."
    assert again.session_id == result.session_id
    history = fake.tool_requests()[n]["messages"]
    # The earlier turn (the write call and its result) is sent again: the session continued.
    assert any(m["role"] == "tool" for m in history)
    assert any(m["role"] == "assistant" and "hello.txt" in json.dumps(m) for m in history)


def test_opencode_prompt_starting_with_a_dash_reaches_the_model_as_text(
        tmp_path: Path, fake: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.push(Reply(text="fine"))
    client = client_for(fake, monkeypatch)
    result = client.run_agent("opencode", "--version --help -y", cwd=tmp_path)
    assert result.success and result.output == "fine"
    last_user = [m for m in fake.tool_requests()[-1]["messages"] if m["role"] == "user"][-1]
    assert "--version --help -y" in json.dumps(last_user)


def test_opencode_auth_failure_is_an_auth_error(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with agent_fake(default=Reply(status=401, error="Invalid API key")) as f:  # type: ignore
        t0 = time.monotonic()
        with pytest.raises(llmcore.AgentAuthError) as info:
            client_for(f, monkeypatch).run_agent("opencode", "hi", cwd=tmp_path)
        assert time.monotonic() - t0 < 60
    assert "LLMCORE_TEST_KEY" in (info.value.hint or "")
    assert KEY not in str(info.value) and KEY not in repr(info.value)


def test_opencode_timeout_stops_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with agent_fake(default=Reply(text="late", delay=60)) as f:  # type: ignore[attr-defined]
        t0 = time.monotonic()
        with pytest.raises(llmcore.AgentTimeoutError):
            client_for(f, monkeypatch, timeout=8).run_agent("opencode", "hi", cwd=tmp_path)
        assert time.monotonic() - t0 < 8 + 3 + 10


def test_cli_lists_and_runs_opencode(tmp_path: Path, fake: Any) -> None:
    cfg = tmp_path / "llmcore.yaml"
    cfg.write_text(real_agent_yaml("opencode", "opencode", fake.base_url))
    env = {"LLMCORE_TEST_KEY": KEY}
    listed = run_cli("--config", str(cfg), "agents", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    row = json.loads(listed.stdout)[0]
    assert row["found"] and row["version"] == "1.18.33" and row["name"] == "opencode"

    repo = git_repo(tmp_path / "repo")
    fake.push(Reply(text="", tool_calls=[{"name": "write", "arguments": {
                  "filePath": str(repo / "a.txt"), "content": "a\n"}}]),
              Reply(text="Wrote a.txt"))
    out = run_cli("--config", str(cfg), "agent", "run", "opencode", "write a.txt", "--cwd",
                  str(repo), "--json", env=env)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["success"] and data["output"] == "Wrote a.txt"
    assert data["files_modified"] == ["a.txt"] and data["session_id"]
    for key in ("duration_s", "exit_code", "usage", "cost_usd", "error"):
        assert key in data

    fake.default = Reply(status=401, error="bad key")
    failed = run_cli("--config", str(cfg), "agent", "run", "opencode", "hi", "--cwd", str(repo),
                     "--json", env=env)
    assert failed.returncode != 0
    assert json.loads(failed.stdout)["error_type"] == "AgentAuthError"
