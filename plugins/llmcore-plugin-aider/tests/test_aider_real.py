"""The real Aider (PyPI aider-chat 0.86.2, own venv) against a scripted OpenAI Chat fake.

Aider calls no tools: the fake answers in Aider's "whole" edit format (file name, then the
whole new content in a fence), which Aider applies to the file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import llmcore
import pytest
from agent_env import agent_fake, check_cli_runs_agent, git_repo, real_agent_yaml
from llmcore.config import parse_config
from llmcore.testing.agents import RealAgentChecks, check_run, header, run_resumed
from llmcore.testing.fakes import Reply

pytestmark = pytest.mark.real_agent
KEY = "sk-test-aider-0123456789abcdef"
OPTIONS = {"edit_format": "whole", "files": ["app.py"]}


def whole_edit(name: str, content: str, say: str = "Here is the change.") -> Reply:
    return Reply(text=f"{say}\n\n{name}\n```\n{content}```\n")


@pytest.fixture
def fake() -> Iterator[Any]:
    with agent_fake() as f:  # type: ignore[attr-defined]
        yield f


def client_for(fake: Any, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> llmcore.Client:
    monkeypatch.setenv("LLMCORE_TEST_KEY", KEY)
    kw.setdefault("options", OPTIONS)
    return llmcore.Client(parse_config(real_agent_yaml("aider", "aider", fake.base_url, **kw)))


@pytest.fixture
def client(fake: Any, monkeypatch: pytest.MonkeyPatch) -> llmcore.Client:
    return client_for(fake, monkeypatch)


@pytest.fixture
def agent_repo(tmp_path: Path) -> Path:
    """The repository Aider works in: ``app.py`` is the file added to its chat."""
    return git_repo(tmp_path / "repo", {"app.py": "print(1)\n"})


def test_aider_applies_an_edit_then_resumes_the_chat(
    client: llmcore.Client, fake: Any, agent_repo: Path
) -> None:
    fake.push(whole_edit("app.py", "print(2)\n"))
    result = client.run_agent("aider", "print 2 instead of 1", cwd=agent_repo)
    # Aider's own .aider* files are not counted as modified.
    check_run(result, output_contains="Here is the change.", files=["app.py"])
    assert (agent_repo / "app.py").read_text() == "print(2)\n"
    req = fake.requests[-1].json
    assert req["model"] == "fake-model"
    # The key arrived (by environment, not argv).
    assert header(fake.requests[-1], "authorization") == f"Bearer {KEY}"
    assert "print 2 instead of 1" in json.dumps(req["messages"])
    assert not list(agent_repo.glob(".aider.chat*"))  # the chat history lives in llmcore's state

    run_resumed(
        client,
        "aider",
        result,
        fake,
        agent_repo,
        answer="I changed app.py to print 2.",
        prompt="what did you change?",
        exact=False,
    )
    assert "print 2 instead of 1" in json.dumps(fake.requests[-1].json["messages"])


def test_aider_edit_it_cannot_apply_is_a_failure_despite_exit_0(
    tmp_path: Path, fake: Any, monkeypatch: pytest.MonkeyPatch, agent_repo: Path
) -> None:
    # A SEARCH block that matches nothing: Aider reports it, asks the model again (same bad
    # answer from the fake), gives up, and still exits 0.
    fake.default = Reply(
        text="app.py\n```python\n<<<<<<< SEARCH\nprint(99)\n=======\n"
        "print(2)\n>>>>>>> REPLACE\n```\n"
    )
    client = client_for(fake, monkeypatch, options={"edit_format": "diff", "files": ["app.py"]})
    result = client.run_agent("aider", "change it", cwd=agent_repo)
    assert result.exit_code == 0
    assert result.success is False
    assert result.error and "could not apply" in result.error
    assert result.files_modified == []
    assert (agent_repo / "app.py").read_text() == "print(1)\n"


class TestAiderFailures(RealAgentChecks):
    """Refused key, slow server, flag-like prompt, server down (llmcore.testing.agents)."""

    agent, key, key_env = "aider", KEY, "LLMCORE_TEST_KEY"
    auth_status_in_message = False
    fail_within, timeout_s, timeout_slack = 90, 20, 13  # Aider starts in ~5 s
    exact_output = False  # Aider's answer comes with the lines it printed around it
    # Server down: nothing listens, so the runner's pre-flight connect
    # (llmcore.Agent.check_endpoint) reports it before Aider starts. A server that accepts
    # and then fails is caught by the retry watch (test below).


@pytest.fixture
def dropping_server() -> Iterator[str]:
    """A base_url whose server accepts each connection and closes it at once: the
    pre-flight connect succeeds, every request fails with a connection error."""
    import socket
    import threading

    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}/v1"
    finally:
        stop.set()
        t.join(2)
        srv.close()


def test_endpoint_that_drops_connections_stops_at_the_first_retry(
    dropping_server: str, monkeypatch: pytest.MonkeyPatch, agent_repo: Path
) -> None:
    monkeypatch.setenv("LLMCORE_TEST_KEY", KEY)
    client = llmcore.Client(
        parse_config(real_agent_yaml("aider", "aider", dropping_server, options=OPTIONS))
    )
    t0 = time.monotonic()
    with pytest.raises(llmcore.AgentConnectionError) as info:
        client.run_agent("aider", "hi", cwd=agent_repo, timeout=80)
    took = time.monotonic() - t0
    # Aider alone would retry for over a minute (up to the timeout); the first
    # "Retrying in 0.2 seconds" line, a few seconds after start-up, ends the run.
    assert took < 40, f"took {took:.1f}s"
    err = info.value
    assert "Connection" in err.message and "base_url" in (err.hint or "")
    assert KEY not in str(err) and KEY not in repr(err)
    assert err.result is not None and err.result.files_modified == []


def test_cli_lists_and_runs_aider(tmp_path: Path, fake: Any) -> None:
    check_cli_runs_agent(
        tmp_path,
        fake,
        name="aider",
        key=KEY,
        version="0.86.2",
        script=lambda repo: fake.push(whole_edit("app.py", "print(3)\n")),
        prompt="print 3",
        files=["app.py"],
        options=OPTIONS,
        repo_files={"app.py": "print(1)\n"},
        refused_key=False,
    )
