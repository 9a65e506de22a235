"""How the Aider plugin reads Aider's printed output (recorded from aider 0.86.2)."""

from __future__ import annotations

from pathlib import Path

import llmcore
import pytest
from llmcore.config import AgentConfig
from llmcore.types import AgentTask
from llmcore_aider import AiderAgent

SERVER_DOWN = """\
Aider v0.86.2
Model: openai/fake-model with whole edit format
Git repo: .git with 1 files
litellm.InternalServerError: InternalServerError: OpenAIException - Connection
error.
The API provider's servers are down or overloaded.
Retrying in 32.0 seconds...
litellm.InternalServerError: InternalServerError: OpenAIException - Connection
error.
"""

APPLIED = """\
Aider v0.86.2
Model: openai/fake-model with whole edit format
Added app.py to the chat.

I will change it.

app.py

Tokens: 1.2k sent, 8 received. Cost: $0.0021 message, $0.0021 session.
Applied edit to app.py
"""


def run_output(stdout: str, exit_code: int = 0) -> llmcore.RunOutput:
    return llmcore.RunOutput(exit_code=exit_code, events=[], stdout_tail=stdout,
                             stderr_tail="", duration_s=1.0, files_modified=[])


def test_server_down_is_a_connection_error_although_aider_exits_0(tmp_path: Path) -> None:
    agent = AiderAgent(AgentConfig(name="aider", base_url="http://127.0.0.1:9/v1"))
    with pytest.raises(llmcore.AgentConnectionError) as info:
        agent.finish(AgentTask(prompt="x", cwd=str(tmp_path)), run_output(SERVER_DOWN))
    assert "http://127.0.0.1:9/v1" in (info.value.hint or "")


def test_applied_edit_tokens_and_cost_are_read(tmp_path: Path) -> None:
    agent = AiderAgent(AgentConfig(name="aider"))
    result = agent.finish(AgentTask(prompt="x", cwd=str(tmp_path)), run_output(APPLIED))
    assert result.success
    assert result.files_modified == ["app.py"]  # from the printed line when git saw nothing
    assert result.usage is not None
    assert (result.usage.input_tokens, result.usage.output_tokens) == (1200, 8)
    assert result.cost_usd == pytest.approx(0.0021)
    assert result.output.startswith("I will change it.")
