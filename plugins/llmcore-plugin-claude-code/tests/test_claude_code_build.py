"""Command line, environment and version detection of the claude-code agent."""

from __future__ import annotations

from pathlib import Path

import llmcore
import pytest
from agent_env import real_program
from llmcore.config import AgentConfig
from llmcore_claude_code.agent import PERMISSION_MODES, ClaudeCodeAgent


def _agent(**cfg: object) -> ClaudeCodeAgent:
    return ClaudeCodeAgent(AgentConfig(name="claude", plugin="claude-code", **cfg))  # type: ignore[arg-type]


def _task(tmp_path: Path, **kw: object) -> llmcore.AgentTask:
    return llmcore.AgentTask(prompt=str(kw.pop("prompt", "-rf do it")), cwd=str(tmp_path), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", sorted(PERMISSION_MODES))
def test_each_mode_maps_to_a_permission_mode(tmp_path: Path, mode: str) -> None:
    argv = _agent().build(_task(tmp_path, mode=mode)).argv
    i = argv.index("--permission-mode")
    assert argv[i + 1] == PERMISSION_MODES[mode]
    assert argv[-2:] == ["--", "-rf do it"]  # the prompt comes after "--"


def test_unknown_mode_is_refused_with_the_choices(tmp_path: Path) -> None:
    with pytest.raises(llmcore.AgentError) as info:
        _agent().build(_task(tmp_path, mode="yolo"))
    assert "yolo" in str(info.value) and "full_auto" in (info.value.hint or "")


def test_endpoint_model_resume_and_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "sk-ant-secret-value-123456")
    inv = _agent(
        base_url="http://127.0.0.1:9/v1/",
        api_key_env="MY_KEY",
        model="claude-x",
        options={"max_turns": 3},
    ).build(_task(tmp_path, mode="suggest", resume="abc-123"))
    assert inv.env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9"  # /v1 dropped: claude adds it
    assert inv.env["ANTHROPIC_API_KEY"] == "sk-ant-secret-value-123456"
    assert inv.env["CLAUDE_CODE_MAX_RETRIES"] == "0"
    assert "sk-ant-secret-value-123456" not in " ".join(inv.argv)
    assert inv.argv[inv.argv.index("--model") + 1] == "claude-x"
    assert inv.argv[inv.argv.index("--resume") + 1] == "abc-123"
    assert inv.argv[inv.argv.index("--max-turns") + 1] == "3"
    assert "IS_SANDBOX" not in inv.env  # only full_auto asks for it


def test_missing_key_variable_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOPE_KEY", raising=False)
    with pytest.raises(llmcore.AgentError) as info:
        _agent(api_key_env="NOPE_KEY").build(_task(tmp_path))
    assert "NOPE_KEY" in str(info.value) and "export NOPE_KEY" in (info.value.hint or "")


@pytest.mark.real_agent
def test_version_and_availability(tmp_path: Path) -> None:
    exe, _ = real_program("claude")
    agent = _agent(command=exe)
    assert agent.available()
    assert agent.version() == "2.1.330"  # the version scripts/setup-agents.sh pins
    missing = _agent(command=str(tmp_path / "nope"))
    assert not missing.available() and missing.version() is None
