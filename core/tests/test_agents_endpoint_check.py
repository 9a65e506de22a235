"""The runner's pre-flight connect to an agent's ``base_url`` (llmcore.Agent.check_endpoint).

Qwen Code, OpenCode and Aider retry a refused connection for minutes; the runner checks that
something listens at ``base_url`` before starting the program so a dead endpoint is an
:class:`AgentConnectionError` at once. Only a refused connection counts.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import llmcore
import pytest
from agent_env import git_repo, script_agent, write_script


def _dead_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _agent(tmp_path: Path, base_url: str | None, **config: Any) -> Any:
    # The fake agent writes a file: whether it ran shows in the repository.
    script = write_script(
        tmp_path,
        """
        import pathlib
        pathlib.Path("ran.txt").write_text("ran")
        print("done")
    """,
    )
    return script_agent(script, base_url=base_url, **config)


def test_refused_endpoint_fails_before_the_program_starts(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    url = f"http://127.0.0.1:{_dead_port()}/v1"
    agent = _agent(tmp_path, url)
    t0 = time.monotonic()
    with pytest.raises(llmcore.AgentConnectionError) as info:
        agent.run(llmcore.AgentTask(prompt="hi", cwd=str(repo)))
    assert time.monotonic() - t0 < 2
    assert url in info.value.message and "refused" in info.value.message
    assert "base_url" in (info.value.hint or "")
    assert not (repo / "ran.txt").exists()


def test_listening_endpoint_lets_the_program_run(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    with socket.create_server(("127.0.0.1", 0)) as srv:
        agent = _agent(tmp_path, f"http://127.0.0.1:{srv.getsockname()[1]}")
        result = agent.run(llmcore.AgentTask(prompt="hi", cwd=str(repo)))
    assert result.success and result.files_modified == ["ran.txt"]


def test_no_base_url_or_check_switched_off_means_no_check(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{_dead_port()}"
    _agent(tmp_path, None).check_endpoint()
    agent = _agent(tmp_path, dead)
    type(agent).check_endpoint_first = False
    agent.check_endpoint()  # the plugin said its program does not connect there directly


def test_proxy_leaves_remote_hosts_to_the_program(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "localhost.invalid" never resolves; with a proxy the program would reach it through
    # the proxy, so the pre-flight must not judge it (and must not hang or raise).
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:1")
    _agent(tmp_path, "https://models.example.invalid/v1").check_endpoint()
    # Loopback never goes through a proxy: still checked.
    with pytest.raises(llmcore.AgentConnectionError):
        _agent(tmp_path, f"http://127.0.0.1:{_dead_port()}").check_endpoint()


def test_unresolvable_host_or_bad_url_is_left_to_the_program(tmp_path: Path) -> None:
    _agent(tmp_path, "http://models.example.invalid:8000/v1").check_endpoint()
    _agent(tmp_path, "http://127.0.0.1:notaport/v1").check_endpoint()
