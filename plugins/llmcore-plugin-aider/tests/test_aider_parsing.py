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
    return llmcore.RunOutput(
        exit_code=exit_code,
        events=[],
        stdout_tail=stdout,
        stderr_tail="",
        duration_s=1.0,
        files_modified=[],
    )


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


RATE_LIMITED = """\
Aider v0.86.2
Model: openai/fake-model with whole edit format
litellm.RateLimitError: RateLimitError: OpenAIException - Too many requests
Retrying in 0.2 seconds...
"""


@pytest.mark.parametrize(
    ("printed", "limit", "trips_at", "kind"),
    [
        (SERVER_DOWN, 1, "Retrying in 32.0", llmcore.AgentConnectionError),
        (RATE_LIMITED, 1, "Retrying in 0.2", llmcore.AgentRateLimitError),
        (
            SERVER_DOWN + "Retrying in 64.0 seconds...\n",
            2,
            "Retrying in 64.0",
            llmcore.AgentConnectionError,
        ),
    ],
)
def test_retry_notice_stops_the_run_with_the_error_being_retried(
    printed: str, limit: int, trips_at: str, kind: type
) -> None:
    agent = AiderAgent(
        AgentConfig(
            name="aider",
            plugin="aider",
            base_url="http://127.0.0.1:9/v1",
            options={"retry_notices": limit},
        )
    )
    from llmcore_aider import _RetryWatch

    watch = _RetryWatch(None, limit)
    agent._watches.append(watch)
    for line in printed.splitlines():
        assert not watch.is_set(), f"tripped before {line!r}"
        agent.parse_line(line)
        if line.startswith(trips_at):
            break
    assert watch.is_set() and watch.failure
    assert not watch.failure.startswith(("Aider v", "Model:"))  # the error, not the banner
    err = agent.retry_error(watch.failure)
    assert type(err) is kind
    if kind is llmcore.AgentConnectionError:
        assert "base_url" in (err.hint or "")


def test_retry_watch_passes_on_the_callers_cancel() -> None:
    import threading

    from llmcore_aider import _RetryWatch

    outer = threading.Event()
    watch = _RetryWatch(outer, 1)
    assert not watch.is_set()
    outer.set()
    assert watch.is_set() and watch.failure is None  # a plain cancel, not a retry
