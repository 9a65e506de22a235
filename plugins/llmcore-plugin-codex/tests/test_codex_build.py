"""Command line, provider overrides and version detection of the codex agent."""

from __future__ import annotations

from pathlib import Path

import llmcore
import pytest
from agent_env import real_program
from llmcore.config import AgentConfig
from llmcore_codex.agent import SANDBOX_FLAGS, CodexAgent


def _agent(**cfg: object) -> CodexAgent:
    return CodexAgent(AgentConfig(name="codex", plugin="codex", **cfg))  # type: ignore[arg-type]


def _task(tmp_path: Path, **kw: object) -> llmcore.AgentTask:
    return llmcore.AgentTask(prompt="--help me", cwd=str(tmp_path), **kw)  # type: ignore[arg-type]


def _overrides(argv: list[str]) -> dict[str, str]:
    pairs = [argv[i + 1] for i, a in enumerate(argv) if a == "-c"]
    return dict(p.split("=", 1) for p in pairs)


@pytest.mark.parametrize("mode", sorted(SANDBOX_FLAGS))
def test_each_mode_maps_to_sandbox_flags(tmp_path: Path, mode: str) -> None:
    argv = _agent().build(_task(tmp_path, mode=mode)).argv
    flags = SANDBOX_FLAGS[mode]
    assert any(argv[i : i + len(flags)] == flags for i in range(len(argv)))
    assert argv[1:4] == ["exec", "--json", "--skip-git-repo-check"]
    assert argv[-2:] == ["--", "--help me"]


def test_no_endpoint_keeps_codex_own_provider_and_home(tmp_path: Path) -> None:
    inv = _agent().build(_task(tmp_path))
    assert "model_provider" not in _overrides(inv.argv)
    assert "CODEX_HOME" not in inv.env


def test_endpoint_becomes_a_custom_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCAL_KEY", "sk-local-secret-1234567")
    agent = _agent(base_url="http://127.0.0.1:8080", api_key_env="LOCAL_KEY", model="qwen")
    inv = agent.build(_task(tmp_path, resume="0199-abc"))
    o = _overrides(inv.argv)
    assert o["model_provider"] == '"llmcore"'
    assert o["model_providers.llmcore.base_url"] == '"http://127.0.0.1:8080/v1"'
    assert o["model_providers.llmcore.env_key"] == '"LOCAL_KEY"'
    assert o["model_providers.llmcore.wire_api"] == '"responses"'
    assert o["model_providers.llmcore.request_max_retries"] == "0"
    assert inv.env["LOCAL_KEY"] == "sk-local-secret-1234567"
    assert "sk-local-secret-1234567" not in " ".join(inv.argv)
    assert Path(inv.env["CODEX_HOME"]).is_dir()
    assert inv.argv[inv.argv.index("-m") + 1] == "qwen"
    i = inv.argv.index("resume")
    assert inv.argv[i:] == ["resume", "0199-abc", "--", "--help me"]


def test_bad_wire_api_and_mode_are_refused(tmp_path: Path) -> None:
    with pytest.raises(llmcore.AgentError, match="wire_api"):
        _agent(base_url="http://x", options={"wire_api": "grpc"}).build(_task(tmp_path))
    with pytest.raises(llmcore.AgentError, match="unknown mode"):
        _agent().build(_task(tmp_path, mode="plan"))


@pytest.mark.real_agent
def test_version_and_availability(tmp_path: Path) -> None:
    exe, _ = real_program("codex")
    assert _agent(command=exe).version() == "0.169.0"
    assert not _agent(command=str(tmp_path / "nope")).available()
