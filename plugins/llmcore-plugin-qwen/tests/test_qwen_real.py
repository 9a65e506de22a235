"""The real Qwen Code (npm @qwen-code/qwen-code, pinned) against a scripted OpenAI Chat fake."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import llmcore
import pytest
from agent_env import ChatAgentChecks, agent_fake, check_cli_runs_agent, real_agent_yaml
from llmcore.config import parse_config
from llmcore.testing.agents import check_run, header, run_resumed
from llmcore.testing.fakes import Reply

pytestmark = pytest.mark.real_agent
KEY = "sk-test-qwen-0123456789abcdef"


@pytest.fixture
def fake() -> Iterator[Any]:
    # Requests without tools (Qwen's "memory" call) get "noted": the script feeds the loop.
    with agent_fake(side_text="noted") as f:  # type: ignore[attr-defined]
        yield f


@pytest.fixture
def client(fake: Any, monkeypatch: pytest.MonkeyPatch) -> llmcore.Client:
    monkeypatch.setenv("LLMCORE_TEST_KEY", KEY)
    return llmcore.Client(parse_config(real_agent_yaml("qwen", "qwen", fake.base_url)))


def test_qwen_edits_a_file_then_resumes_the_session(
    client: llmcore.Client, fake: Any, agent_repo: Path
) -> None:
    target = agent_repo / "hello.txt"
    fake.push(
        Reply(
            text="",
            tool_calls=[
                {
                    "name": "edit",
                    "arguments": {
                        "file_path": str(target),
                        "old_string": "",
                        "new_string": "hello\n",
                    },
                }
            ],
        ),
        Reply(text="Created hello.txt."),
    )
    events: list[dict[str, Any]] = []
    result = client.run_agent("qwen", "create hello.txt", cwd=agent_repo, on_event=events.append)
    check_run(result, output="Created hello.txt.", files=["hello.txt"])
    assert target.read_text() == "hello\n"
    assert any(e.get("type") == "result" for e in events)
    first = fake.tool_requests()[0]
    assert "edit" in [t["function"]["name"] for t in first["tools"]]
    assert first["model"] == "fake-model"
    assert header(fake.requests[0], "authorization") == f"Bearer {KEY}"

    n = len(fake.tool_requests())
    run_resumed(client, "qwen", result, fake, agent_repo, answer="Resumed: hello.txt exists.")
    history = fake.tool_requests()[n]["messages"]
    assert any(m["role"] == "tool" and "hello.txt" in json.dumps(m) for m in history)


class TestQwenFailures(ChatAgentChecks):
    """Refused key, slow server, flag-like prompt, server down (llmcore.testing.agents)."""

    agent, key = "qwen", KEY
    # Server down: the program retries a refused connection silently for minutes, so the
    # runner's pre-flight connect (llmcore.Agent.check_endpoint) is what reports it.


def test_cli_lists_and_runs_qwen(tmp_path: Path, fake: Any) -> None:
    def script(repo: Path) -> None:
        fake.push(
            Reply(
                text="",
                tool_calls=[
                    {
                        "name": "edit",
                        "arguments": {
                            "file_path": str(repo / "a.txt"),
                            "old_string": "",
                            "new_string": "a\n",
                        },
                    }
                ],
            ),
            Reply(text="Wrote a.txt"),
        )

    check_cli_runs_agent(
        tmp_path,
        fake,
        name="qwen",
        key=KEY,
        version="0.24.4",
        script=script,
        prompt="write a.txt",
        files=["a.txt"],
        output="Wrote a.txt",
    )
