"""Gemini CLI's seed options against the real program: ``sandbox`` (a clear error when the
runtime is missing; the runtime really called when present) and ``allowed_tools`` /
``excluded_tools`` (rules for its Policy Engine)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import llmcore
import pytest
from agent_env import real_program
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


def _client(
    fake: GeminiFake,
    monkeypatch: pytest.MonkeyPatch,
    *,
    mode: str = "auto_edit",
    path_prefix: str = "",
    **options: object,
) -> llmcore.Client:
    exe, path = real_program("gemini")
    monkeypatch.setenv(KEY_VAR, KEY)
    return llmcore.Client(
        agents=[
            GeminiAgent(
                AgentConfig(
                    name="gemini",
                    plugin="gemini",
                    command=exe,
                    base_url=fake.url,
                    api_key_env=KEY_VAR,
                    model="gemini-fake-1",
                    mode=mode,
                    timeout=120,
                    env={"PATH": path_prefix + path},
                    options=dict(options),
                )
            )
        ]
    )


def test_sandbox_runtime_not_installed_is_a_clear_error_before_starting(
    fake: GeminiFake, agent_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _client(fake, monkeypatch, sandbox="podman")
    with pytest.raises(llmcore.AgentError) as info:
        client.run_agent("gemini", "hi", cwd=agent_repo)
    assert "'podman' is not installed" in str(info.value)
    assert "sandbox: off" in (info.value.hint or "")
    assert fake.requests == []
    with pytest.raises(llmcore.ConfigError, match="unknown sandbox"):
        _client(fake, monkeypatch, sandbox="firejail").run_agent("gemini", "hi", cwd=agent_repo)


def test_sandbox_runtime_present_is_what_gemini_starts(
    fake: GeminiFake, agent_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in docker that records how Gemini CLI calls it and has no image to offer.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "docker-calls"
    (bin_dir / "docker").write_text(
        f"#!/bin/sh\necho \"$@\" >> {calls}\necho 'no such image' >&2\nexit 1\n"
    )
    (bin_dir / "docker").chmod(0o755)
    client = _client(fake, monkeypatch, sandbox="docker", path_prefix=f"{bin_dir}{os.pathsep}")
    with pytest.raises(llmcore.AgentError) as info:
        client.run_agent("gemini", "hi", cwd=agent_repo)
    assert "could not start its docker sandbox" in str(info.value)
    assert "sandbox" in calls.read_text()  # Gemini asked docker for its sandbox image


def test_excluded_tool_is_denied_and_allowed_tool_runs_without_asking(
    fake: GeminiFake, agent_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _client(
        fake,
        monkeypatch,
        mode="suggest",
        excluded_tools=["write_file"],
        allowed_tools=["run_shell_command(touch)"],
    )
    fake.push(
        Reply(
            text="",
            tool_calls=[
                {
                    "name": "write_file",
                    "arguments": {"file_path": str(agent_repo / "denied.txt"), "content": "no\n"},
                }
            ],
        ),
        Reply(
            text="",
            tool_calls=[{"name": "run_shell_command", "arguments": {"command": "touch shell.txt"}}],
        ),
        Reply(text="Done."),
    )
    result = client.run_agent("gemini", "try both", cwd=agent_repo)
    assert result.success and result.output == "Done."
    assert not (agent_repo / "denied.txt").exists()
    assert (agent_repo / "shell.txt").exists()  # allowed: ran without asking, in suggest mode
    assert result.files_modified == ["shell.txt"]
    responses = [
        p["functionResponse"]
        for c in fake.requests[1].json["contents"]
        for p in c.get("parts", [])
        if "functionResponse" in p
    ]
    assert [r["name"] for r in responses] == ["write_file"]
    assert "not found" in str(responses)  # excluded: never offered to the model
    offered = [
        f["name"]
        for t in fake.requests[0].json.get("tools", [])
        for f in t.get("functionDeclarations", [])
    ]
    assert "run_shell_command" in offered and "write_file" not in offered
