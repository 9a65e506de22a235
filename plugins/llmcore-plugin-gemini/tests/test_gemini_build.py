"""Command line, private home and version detection of the gemini agent."""

from __future__ import annotations

import json
from pathlib import Path

import llmcore
import pytest
from agent_env import real_program
from llmcore.config import AgentConfig
from llmcore_gemini.agent import APPROVAL_MODES, DEFAULT_MODEL, GeminiAgent


def _agent(**cfg: object) -> GeminiAgent:
    return GeminiAgent(AgentConfig(name="gemini", plugin="gemini", **cfg))  # type: ignore[arg-type]


def _task(tmp_path: Path, **kw: object) -> llmcore.AgentTask:
    return llmcore.AgentTask(prompt="-p --yolo", cwd=str(tmp_path), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", sorted(APPROVAL_MODES))
def test_each_mode_maps_to_an_approval_mode(tmp_path: Path, mode: str) -> None:
    argv = _agent().build(_task(tmp_path, mode=mode)).argv
    assert argv[argv.index("--approval-mode") + 1] == APPROVAL_MODES[mode]
    assert argv[-1] == "--prompt=-p --yolo"  # one argument: never read as flags
    assert argv[argv.index("-m") + 1] == DEFAULT_MODEL  # always a model: no router call
    assert "--skip-trust" in argv


def test_endpoint_gets_a_private_home_with_api_key_auth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("G_KEY", "AIzaSecretSecretSecret0123456789")
    inv = _agent(base_url="http://127.0.0.1:7/v1beta", api_key_env="G_KEY", model="gemini-x").build(
        _task(tmp_path, resume="sess-1")
    )
    assert inv.env["GOOGLE_GEMINI_BASE_URL"] == "http://127.0.0.1:7"
    assert inv.env["GEMINI_API_KEY"] == "AIzaSecretSecretSecret0123456789"
    assert inv.env["GEMINI_CLI_NO_RELAUNCH"] == "true"
    settings = json.loads((Path(inv.env["HOME"]) / ".gemini" / "settings.json").read_text())
    assert settings["security"]["auth"]["selectedType"] == "gemini-api-key"
    assert settings["general"]["maxAttempts"] == 1
    assert inv.argv[inv.argv.index("--resume") + 1] == "sess-1"
    assert inv.argv[inv.argv.index("-m") + 1] == "gemini-x"


def test_without_endpoint_the_users_home_is_kept(tmp_path: Path) -> None:
    assert "HOME" not in _agent().build(_task(tmp_path)).env


@pytest.mark.real_agent
def test_version_without_starting_node(tmp_path: Path) -> None:
    exe, _ = real_program("gemini")
    assert _agent(command=exe).version() == "0.61.0"
    assert not _agent(command=str(tmp_path / "nope")).available()
