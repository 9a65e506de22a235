"""The real ``gemini`` program against the scripted Gemini fake: edit, resume, 401, timeout."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import llmcore
import pytest
from agent_env import check_cli_runs_agent, real_agent_client
from llmcore.testing.agents import RealAgentChecks, check_run, header, run_resumed
from llmcore.testing.fakes import GeminiFake, Reply
from llmcore_gemini.agent import GeminiAgent

pytestmark = pytest.mark.real_agent
KEY_VAR = "LLMCORE_TEST_GEMINI_KEY"
KEY = "AIzaFakeTestKey0123456789abcdefghij"


@pytest.fixture
def fake() -> Iterator[GeminiFake]:
    with GeminiFake() as server:
        yield server


@pytest.fixture
def client(fake: GeminiFake, monkeypatch: pytest.MonkeyPatch) -> Iterator[llmcore.Client]:
    with real_agent_client(
        GeminiAgent,
        name="gemini",
        program="gemini",
        base_url=fake.url,
        key_env=KEY_VAR,
        key=KEY,
        model="gemini-fake-1",
        monkeypatch=monkeypatch,
    ) as c:
        yield c


def _function_responses(body: dict) -> list[dict]:
    return [
        p["functionResponse"]
        for c in body.get("contents", [])
        for p in c.get("parts", [])
        if "functionResponse" in p
    ]


def test_writes_a_file_then_resumes(
    client: llmcore.Client, fake: GeminiFake, agent_repo: Path
) -> None:
    target = agent_repo / "hello.py"
    fake.push(
        Reply(
            text="",
            usage=(100, 7),
            tool_calls=[
                {
                    "name": "write_file",
                    "arguments": {"file_path": str(target), "content": "print('hi')\n"},
                }
            ],
        ),
        Reply(text="Wrote hello.py.", usage=(120, 5)),
    )
    result = client.run_agent("gemini", "create hello.py", cwd=agent_repo)

    check_run(result, output="Wrote hello.py.", files=["hello.py"], usage=(220, 12))
    assert target.read_text() == "print('hi')\n"
    turns = fake.generate_requests()
    assert len(turns) == 2
    assert all(t.path == "/v1beta/models/gemini-fake-1:streamGenerateContent" for t in turns)
    assert all(header(t, "x-goog-api-key") == KEY for t in turns)
    responses = _function_responses(turns[1].json)
    assert [r["name"] for r in responses] == ["write_file"]

    run_resumed(
        client,
        "gemini",
        result,
        fake,
        agent_repo,
        answer="Still here.",
        prompt="what did you write?",
        usage=(300, 3),
    )
    history = json.dumps(fake.generate_requests()[2].json["contents"])
    assert "create hello.py" in history and "write_file" in history


class TestGeminiFailures(RealAgentChecks):
    """Refused key, slow server, flag-like prompt, server down (llmcore.testing.agents)."""

    agent, key, key_env = "gemini", KEY, KEY_VAR
    auth_error_text = "API key not valid. Please pass a valid API key."
    timeout_s = 6  # Gemini CLI starts slower than the others


def test_cli_lists_and_runs_gemini(tmp_path: Path, fake: GeminiFake) -> None:
    def script(repo: Path) -> None:
        fake.push(
            Reply(
                text="",
                usage=(50, 4),
                tool_calls=[
                    {
                        "name": "write_file",
                        "arguments": {"file_path": str(repo / "a.txt"), "content": "a\n"},
                    }
                ],
            ),
            Reply(text="Wrote a.txt", usage=(60, 2)),
        )

    check_cli_runs_agent(
        tmp_path,
        fake,
        name="gemini",
        key=KEY,
        version="0.61.0",
        script=script,
        prompt="write a.txt",
        files=["a.txt"],
        output="Wrote a.txt",
        base_url=fake.url,
        key_env=KEY_VAR,
        model="gemini-fake-1",
    )
