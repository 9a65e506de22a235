"""The real Aider (PyPI aider-chat 0.86.2, own venv) against a scripted OpenAI Chat fake.

Aider calls no tools: the fake answers in Aider's "whole" edit format (file name, then the
whole new content in a fence), which Aider applies to the file.
"""

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
KEY = "sk-test-aider-0123456789abcdef"
OPTIONS = {"edit_format": "whole", "files": ["app.py"]}


def whole_edit(name: str, content: str, say: str = "Here is the change.") -> Reply:
    return Reply(text=f"{say}\n\n{name}\n```\n{content}```\n")


@pytest.fixture
def fake() -> Any:
    with agent_fake() as f:  # type: ignore[attr-defined]
        yield f


def client_for(fake: Any, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> llmcore.Client:
    monkeypatch.setenv("LLMCORE_TEST_KEY", KEY)
    kw.setdefault("options", OPTIONS)
    return llmcore.Client(parse_config(real_agent_yaml("aider", "aider", fake.base_url, **kw)))


def test_aider_applies_an_edit_then_resumes_the_chat(tmp_path: Path, fake: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    repo = git_repo(tmp_path / "repo", {"app.py": "print(1)\n"})
    fake.push(whole_edit("app.py", "print(2)\n"))
    client = client_for(fake, monkeypatch)
    result = client.run_agent("aider", "print 2 instead of 1", cwd=repo)
    assert result.success, result.error
    assert (repo / "app.py").read_text() == "print(2)\n"
    assert result.files_modified == ["app.py"]  # Aider's own .aider* files are not counted
    assert "Here is the change." in result.output
    assert result.usage and result.usage.input_tokens > 0 and result.usage.output_tokens > 0
    assert result.session_id and result.exit_code == 0
    req = fake.requests[-1].json
    assert req["model"] == "fake-model"
    headers = {k.lower(): v for k, v in fake.requests[-1].headers.items()}
    assert headers.get("authorization") == f"Bearer {KEY}"  # the key arrived (by env, not argv)
    assert "print 2 instead of 1" in json.dumps(req["messages"])
    assert not list(repo.glob(".aider.chat*"))  # the chat history lives in llmcore's state

    fake.push(Reply(text="I changed app.py to print 2."))
    again = client.run_agent("aider", "what did you change?", cwd=repo,
                             resume=result.session_id)
    assert again.success and "I changed app.py to print 2." in again.output
    assert again.session_id == result.session_id
    assert "print 2 instead of 1" in json.dumps(fake.requests[-1].json["messages"])


def test_aider_edit_it_cannot_apply_is_a_failure_despite_exit_0(
        tmp_path: Path, fake: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = git_repo(tmp_path / "repo", {"app.py": "print(1)\n"})
    # A SEARCH block that matches nothing: Aider reports it, asks the model again (same bad
    # answer from the fake), gives up, and still exits 0.
    fake.default = Reply(text="app.py\n```python\n<<<<<<< SEARCH\nprint(99)\n=======\n"
                              "print(2)\n>>>>>>> REPLACE\n```\n")
    client = client_for(fake, monkeypatch, options={"edit_format": "diff", "files": ["app.py"]})
    result = client.run_agent("aider", "change it", cwd=repo)
    assert result.exit_code == 0
    assert result.success is False
    assert result.error and "could not apply" in result.error
    assert result.files_modified == []
    assert (repo / "app.py").read_text() == "print(1)\n"


def test_aider_prompt_starting_with_a_dash_reaches_the_model_as_text(
        tmp_path: Path, fake: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = git_repo(tmp_path / "repo", {"app.py": "print(1)\n"})
    fake.push(Reply(text="fine"))
    result = client_for(fake, monkeypatch, mode="read_only").run_agent(
        "aider", "--version --help -y", cwd=repo)
    assert result.success and "fine" in result.output
    assert "--version --help -y" in json.dumps(fake.requests[-1].json["messages"])


def test_aider_auth_failure_is_an_auth_error(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    repo = git_repo(tmp_path / "repo", {"app.py": "print(1)\n"})
    with agent_fake(default=Reply(status=401, error="Invalid API key")) as f:  # type: ignore
        t0 = time.monotonic()
        with pytest.raises(llmcore.AgentAuthError) as info:
            client_for(f, monkeypatch).run_agent("aider", "hi", cwd=repo)
        assert time.monotonic() - t0 < 90
    assert "LLMCORE_TEST_KEY" in (info.value.hint or "")
    assert KEY not in str(info.value) and KEY not in repr(info.value)


def test_aider_timeout_stops_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = git_repo(tmp_path / "repo", {"app.py": "print(1)\n"})
    with agent_fake(default=Reply(text="late", delay=90)) as f:  # type: ignore
        t0 = time.monotonic()
        with pytest.raises(llmcore.AgentTimeoutError):
            client_for(f, monkeypatch, timeout=20).run_agent("aider", "hi", cwd=repo)
        assert time.monotonic() - t0 < 20 + 3 + 10


def test_cli_lists_and_runs_aider(tmp_path: Path, fake: Any) -> None:
    cfg = tmp_path / "llmcore.yaml"
    cfg.write_text(real_agent_yaml("aider", "aider", fake.base_url, options=OPTIONS))
    env = {"LLMCORE_TEST_KEY": KEY}
    listed = run_cli("--config", str(cfg), "agents", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    row = json.loads(listed.stdout)[0]
    assert row["found"] and row["version"] == "0.86.2"

    repo = git_repo(tmp_path / "repo", {"app.py": "print(1)\n"})
    fake.push(whole_edit("app.py", "print(3)\n"))
    out = run_cli("--config", str(cfg), "agent", "run", "aider", "print 3", "--cwd",
                  str(repo), "--json", env=env)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["success"] and data["files_modified"] == ["app.py"] and data["session_id"]
