"""Aider with an ``ollama_chat/…`` model reaches the Ollama at ``base_url`` (OLLAMA_API_BASE),
not the default localhost:11434: the real Aider against the Ollama fake."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import llmcore
import pytest
from agent_env import git_repo, real_agent_yaml
from llmcore.config import parse_config
from llmcore.testing.fakes import OllamaFake, Reply

pytestmark = pytest.mark.real_agent


@pytest.fixture
def fake() -> Iterator[OllamaFake]:
    with OllamaFake() as server:
        yield server


def test_ollama_model_goes_to_the_configured_ollama(
    fake: OllamaFake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = git_repo(tmp_path / "repo", {"app.py": "print(1)\n"})
    monkeypatch.setenv("LLMCORE_TEST_KEY", "unused")
    client = llmcore.Client(
        parse_config(
            real_agent_yaml(
                "aider",
                "aider",
                fake.url + "/v1",
                model="ollama_chat/llama3.2",
                options={"edit_format": "whole", "files": ["app.py"]},
            )
        )
    )
    # The default reply, not a script: litellm also asks /api/show, which takes a turn.
    fake.default = Reply(text="Here it is.\n\napp.py\n```\nprint(2)\n```\n")
    result = client.run_agent("aider", "print 2", cwd=repo)
    assert result.success, result.error
    assert (repo / "app.py").read_text() == "print(2)\n"
    chats = [r for r in fake.requests if r.path == "/api/chat"]
    assert chats and chats[-1].json["model"] == "llama3.2"
    assert "print 2" in json.dumps(chats[-1].json["messages"])
