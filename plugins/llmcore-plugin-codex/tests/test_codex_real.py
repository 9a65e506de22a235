"""The real ``codex`` program against the scripted Responses fake: edit, resume, 401, timeout."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import llmcore
import pytest
from agent_env import check_cli_runs_agent, real_agent_client
from llmcore.testing.agents import RealAgentChecks, check_run, header, run_resumed
from llmcore.testing.fakes import Reply, ResponsesFake
from llmcore_codex.agent import CodexAgent

pytestmark = pytest.mark.real_agent
KEY_VAR = "LLMCORE_TEST_CODEX_KEY"
KEY = "sk-test-codex-0123456789abcdef"


@pytest.fixture
def fake() -> Iterator[ResponsesFake]:
    with ResponsesFake() as server:
        yield server


@pytest.fixture
def client(fake: ResponsesFake, monkeypatch: pytest.MonkeyPatch) -> Iterator[llmcore.Client]:
    with real_agent_client(
        CodexAgent,
        name="codex",
        program="codex",
        base_url=fake.base_url,
        key_env=KEY_VAR,
        key=KEY,
        model="fake-model",
        monkeypatch=monkeypatch,
    ) as c:
        yield c


def _function_outputs(body: dict) -> list[dict]:
    return [i for i in body.get("input", []) if i.get("type") == "function_call_output"]


def test_writes_a_file_then_resumes(
    client: llmcore.Client, fake: ResponsesFake, agent_repo: Path
) -> None:
    fake.push(
        Reply(
            text="",
            usage=(100, 7),
            tool_calls=[
                {
                    "name": "exec_command",
                    "id": "call_write_1",
                    "arguments": {
                        "cmd": "printf 'print(1)\\n' > hello.py",
                        "workdir": str(agent_repo),
                        "tty": False,
                    },
                }
            ],
        ),
        Reply(text="Wrote hello.py.", usage=(120, 5)),
    )
    result = client.run_agent("codex", "create hello.py", cwd=agent_repo)

    check_run(result, output="Wrote hello.py.", files=["hello.py"], usage=(220, 12))
    assert (agent_repo / "hello.py").read_text() == "print(1)\n"
    turns = fake.response_requests()
    assert len(turns) == 2
    assert all(header(t, "authorization") == f"Bearer {KEY}" for t in turns)
    assert turns[0].json["model"] == "fake-model"
    outputs = _function_outputs(turns[1].json)
    assert [o["call_id"] for o in outputs] == ["call_write_1"]

    run_resumed(
        client,
        "codex",
        result,
        fake,
        agent_repo,
        answer="Still here.",
        prompt="what did you write?",
        usage=(300, 3),
    )
    history = json.dumps(fake.response_requests()[2].json["input"])
    assert "create hello.py" in history and "call_write_1" in history


class TestCodexFailures(RealAgentChecks):
    """Refused key, slow server, flag-like prompt, server down (llmcore.testing.agents)."""

    agent, key, key_env = "codex", KEY, KEY_VAR
    auth_error_text = "Incorrect API key provided"


def test_cli_lists_and_runs_codex(tmp_path: Path, fake: ResponsesFake) -> None:
    def script(repo: Path) -> None:
        fake.push(
            Reply(
                text="",
                usage=(50, 4),
                tool_calls=[
                    {
                        "name": "exec_command",
                        "id": "call_cli_1",
                        "arguments": {
                            "cmd": "printf 'a\\n' > a.txt",
                            "workdir": str(repo),
                            "tty": False,
                        },
                    }
                ],
            ),
            Reply(text="Wrote a.txt", usage=(60, 2)),
        )

    check_cli_runs_agent(
        tmp_path,
        fake,
        name="codex",
        key=KEY,
        version="0.169.0",
        script=script,
        prompt="write a.txt",
        files=["a.txt"],
        output="Wrote a.txt",
        key_env=KEY_VAR,
    )
