"""A 300 KiB prompt, from a prompt file, reaches each of the six real programs.

Linux refuses any single argument over 128 KiB, so a prompt that long must go by stdin (Claude
Code, Codex, Gemini CLI, Qwen Code, OpenCode) or a file (Aider's ``--message-file``). The
fake endpoint must then receive the whole text: its first and its last words.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import llmcore
import pytest
from agent_env import agent_fake, real_agent_client, real_agent_yaml
from llmcore.config import parse_config
from llmcore.testing.fakes import AnthropicFake, GeminiFake, Reply, ResponsesFake

pytestmark = pytest.mark.real_agent
KEY = "sk-test-long-0123456789abcdef"
HEAD, TAIL = "LONGPROMPT-HEAD-7f3a", "LONGPROMPT-TAIL-9c1e"


def _chat_client(plugin: str, fake: Any, monkeypatch: pytest.MonkeyPatch) -> llmcore.Client:
    monkeypatch.setenv("LLMCORE_TEST_KEY", KEY)
    return llmcore.Client(parse_config(real_agent_yaml(plugin, plugin, fake.base_url)))


def _claude(fake: Any, mp: pytest.MonkeyPatch, tmp: Path) -> llmcore.Client:
    from llmcore_claude_code.agent import ClaudeCodeAgent

    (tmp / "home").mkdir()
    return real_agent_client(
        ClaudeCodeAgent,
        name="claude-code",
        program="claude",
        base_url=fake.url,
        key_env="LLMCORE_TEST_KEY",
        key=KEY,
        model="claude-fake-1",
        monkeypatch=mp,
        env={"HOME": str(tmp / "home")},
    )


def _codex(fake: Any, mp: pytest.MonkeyPatch, tmp: Path) -> llmcore.Client:
    from llmcore_codex.agent import CodexAgent

    return real_agent_client(
        CodexAgent,
        name="codex",
        program="codex",
        base_url=fake.base_url,
        key_env="LLMCORE_TEST_KEY",
        key=KEY,
        model="gpt-fake",
        monkeypatch=mp,
    )


def _gemini(fake: Any, mp: pytest.MonkeyPatch, tmp: Path) -> llmcore.Client:
    from llmcore_gemini.agent import GeminiAgent

    return real_agent_client(
        GeminiAgent,
        name="gemini",
        program="gemini",
        base_url=fake.url,
        key_env="LLMCORE_TEST_KEY",
        key=KEY,
        model="gemini-fake",
        monkeypatch=mp,
    )


CASES: dict[str, tuple[Callable[[], Any], Callable[..., llmcore.Client]]] = {
    "claude-code": (AnthropicFake, _claude),
    "codex": (ResponsesFake, _codex),
    "gemini": (GeminiFake, _gemini),
    "qwen": (lambda: agent_fake(side_text="noted"), lambda f, mp, tmp: _chat_client("qwen", f, mp)),
    "opencode": (
        lambda: agent_fake(side_text="A title"),
        lambda f, mp, tmp: _chat_client("opencode", f, mp),
    ),
    "aider": (agent_fake, lambda f, mp, tmp: _chat_client("aider", f, mp)),
}


@pytest.mark.parametrize("agent", list(CASES))
def test_300_kib_prompt_file_reaches_the_real_program(
    agent: str, tmp_path: Path, agent_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_fake, make_client = CASES[agent]
    body = "Read this carefully. " * (300 * 1024 // 21)
    prompt = f"{HEAD} {body}Reply with the word done. {TAIL}"
    assert len(prompt.encode()) > 300 * 1024
    task = tmp_path / "task.txt"
    task.write_text(prompt, encoding="utf-8")
    with make_fake() as fake:
        fake.push(*[Reply(text="done") for _ in range(4)])
        client = make_client(fake, monkeypatch, tmp_path)
        name = next(iter(client.runtime.agents))
        try:
            result = client.run_agent(name, prompt_file=task, cwd=agent_repo, timeout=180)
        except llmcore.AgentError as exc:  # the report below says what arrived
            result = exc.result
        sent = [r.body.decode("utf-8", "replace") for r in fake.requests if r.body]
    got = [s for s in sent if HEAD in s and TAIL in s]
    assert got, (
        f"{agent}: no request carried the whole prompt; {len(sent)} requests, "
        f"sizes {[len(s) for s in sent]}; result {result}"
    )
    # The whole text, not a cut: every repetition arrived (JSON may escape nothing here).
    assert max(s.count("Read this carefully.") for s in got) >= body.count("Read this carefully.")
    assert result is not None and result.success, json.dumps(result.to_dict() if result else {})
