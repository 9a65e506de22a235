"""Real coding agents through ``llmcore serve`` (``via_gateway: true``) while the first
upstream of their route answers 500: each completes a file-writing task whose tool call is
scripted on an OpenAI-compatible fake behind the gateway, and the failed attempts show in
``llmcore usage``. Claude Code speaks /v1/messages, Codex /v1/responses, Qwen Code,
OpenCode and Aider /v1/chat/completions; the gateway translates each to the upstream."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import llmcore
import pytest
from agent_env import agent_fake, real_program
from llmcore.serve import agents as gateway_agents
from llmcore.testing.agents import git_repo
from llmcore.testing.fakes import OpenAIFake
from llmcore.testing.fakes.base import Reply

pytestmark = pytest.mark.real_agent


@pytest.fixture
def upstreams() -> Iterator[tuple[OpenAIFake, OpenAIFake]]:
    broken = OpenAIFake(default=Reply(status=500, error="upstream down")).start()
    # requests that offer no tools (OpenCode's title, Qwen's memory call) get a side answer,
    # so the script feeds only the agent's main loop
    good = agent_fake(side_text="noted").start()
    yield broken, good
    broken.stop()
    good.stop()
    gateway_agents.stop_started()  # the gateway this test's client started


def write_config(
    tmp: Path,
    broken: OpenAIFake,
    good: OpenAIFake,
    agent: str,
    plugin: str,
    program: str,
    **options: object,
) -> Path:
    exe, path = real_program(program)
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    opts = "".join(f"\n    {k}: {json.dumps(v)}" for k, v in options.items())
    cfg = tmp / "llmcore.yaml"
    cfg.write_text(f"""
providers:
  broken: {{plugin: openai, base_url: "{broken.base_url}", models: [fake-model],
           retry: {{max_attempts: 1}}}}
  good: {{plugin: openai, base_url: "{good.base_url}", models: [fake-model]}}
routing: {{state: memory}}
metrics: {{sinks: [sqlite], sqlite: {{path: "{tmp / "metrics.db"}", flush_interval: 0.2}}}}
serve:
  port: 0
  models:
    coder: [broken/fake-model, good/fake-model]
agents:
  {agent}:
    plugin: {plugin}
    command: "{exe}"
    model: coder
    mode: auto_edit
    timeout: 150
    via_gateway: true
    env: {{PATH: "{path}", HOME: "{home}"}}{opts}
""")
    return cfg


def usage_rows(cfg: Path) -> dict[str, dict]:
    deadline = time.monotonic() + 20
    rows: dict[str, dict] = {}
    while time.monotonic() < deadline:
        out = subprocess.run(
            [sys.executable, "-m", "llmcore", "usage", "--json", "--config", str(cfg)],
            capture_output=True,
            text=True,
            check=True,
        )
        rows = {r["provider"]: r for r in json.loads(out.stdout)["rows"]}
        if "good" in rows and "broken" in rows:
            break
        time.sleep(0.3)
    return rows


def run_through_gateway(
    tmp_path: Path,
    upstreams: tuple[OpenAIFake, OpenAIFake],
    agent: str,
    plugin: str,
    program: str,
    replies: list[Reply],
    prompt: str,
    files: dict[str, str] | None = None,
    **options: object,
) -> tuple[llmcore.AgentResult, Path]:
    broken, good = upstreams
    cfg = write_config(tmp_path, broken, good, agent, plugin, program, **options)
    repo = git_repo(tmp_path / "repo", files)
    good.push(*replies)
    with llmcore.Client.from_config(cfg) as client:
        result = client.run_agent(agent, prompt, cwd=repo)
    assert result.success, (result.error, result.output)
    assert broken.requests, "the first upstream of the route was never tried"
    rows = usage_rows(cfg)
    assert rows["good"]["requests"] >= 1
    assert rows["broken"]["failed_attempts"] >= 1
    return result, repo


def test_claude_code_through_messages(
    tmp_path: Path, upstreams: tuple[OpenAIFake, OpenAIFake]
) -> None:
    target = tmp_path / "repo" / "hello.py"
    result, _ = run_through_gateway(
        tmp_path,
        upstreams,
        "claude",
        "claude-code",
        "claude",
        [
            Reply(
                text="",
                tool_calls=[
                    {
                        "name": "Write",
                        "id": "toolu_w1",
                        "arguments": {"file_path": str(target), "content": "print('hi')\n"},
                    }
                ],
            ),
            Reply(text="Wrote hello.py."),
        ],
        "create hello.py",
    )
    assert target.read_text() == "print('hi')\n"
    assert result.files_modified == ["hello.py"] and "Wrote hello.py." in result.output
    tool_turn = upstreams[1].requests[-1].json["messages"]
    assert any(m["role"] == "tool" and m["tool_call_id"] == "toolu_w1" for m in tool_turn)


def test_codex_through_responses(tmp_path: Path, upstreams: tuple[OpenAIFake, OpenAIFake]) -> None:
    repo_dir = tmp_path / "repo"
    result, repo = run_through_gateway(
        tmp_path,
        upstreams,
        "codex",
        "codex",
        "codex",
        [
            Reply(
                text="",
                tool_calls=[
                    {
                        "name": "exec_command",
                        "id": "call_w1",
                        "arguments": {
                            "cmd": "printf 'print(1)\\n' > hello.py",
                            "workdir": str(repo_dir),
                            "tty": False,
                        },
                    }
                ],
            ),
            Reply(text="Wrote hello.py."),
        ],
        "create hello.py",
    )
    assert (repo / "hello.py").read_text() == "print(1)\n"
    assert result.files_modified == ["hello.py"]


def test_qwen_code_through_chat_completions(
    tmp_path: Path, upstreams: tuple[OpenAIFake, OpenAIFake]
) -> None:
    target = tmp_path / "repo" / "hello.txt"
    result, _ = run_through_gateway(
        tmp_path,
        upstreams,
        "qwen",
        "qwen",
        "qwen",
        [
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
        ],
        "create hello.txt",
    )
    assert target.read_text() == "hello\n" and result.files_modified == ["hello.txt"]


def test_opencode_through_chat_completions(
    tmp_path: Path, upstreams: tuple[OpenAIFake, OpenAIFake]
) -> None:
    target = tmp_path / "repo" / "hello.txt"
    result, _ = run_through_gateway(
        tmp_path,
        upstreams,
        "opencode",
        "opencode",
        "opencode",
        [
            Reply(
                text="",
                tool_calls=[
                    {"name": "write", "arguments": {"filePath": str(target), "content": "hello\n"}}
                ],
            ),
            Reply(text="Created hello.txt."),
        ],
        "create hello.txt",
    )
    assert target.read_text() == "hello\n" and result.files_modified == ["hello.txt"]


@pytest.fixture
def aider_upstreams() -> Iterator[tuple[OpenAIFake, OpenAIFake]]:
    """Aider offers no tools: its answer is a whole-file edit in the text."""
    broken = OpenAIFake(default=Reply(status=500, error="upstream down")).start()
    good = OpenAIFake(
        default=Reply(text="Here is the change.\n\napp.py\n```\nprint(2)\n```\n")
    ).start()
    yield broken, good
    broken.stop()
    good.stop()
    gateway_agents.stop_started()


def test_aider_through_chat_completions(
    tmp_path: Path, aider_upstreams: tuple[OpenAIFake, OpenAIFake]
) -> None:
    result, repo = run_through_gateway(
        tmp_path,
        aider_upstreams,
        "aider",
        "aider",
        "aider",
        [],
        "print 2 instead of 1",
        files={"app.py": "print(1)\n"},
        options={"edit_format": "whole", "files": ["app.py"]},
    )
    assert (repo / "app.py").read_text() == "print(2)\n"
    assert result.files_modified == ["app.py"]


def test_a_running_gateway_is_reused_and_the_agent_left_untouched(
    tmp_path: Path, upstreams: tuple[OpenAIFake, OpenAIFake]
) -> None:
    from gateway_support import GatewayProcess, provider_yaml
    from llmcore.config import AgentConfig, parse_config
    from llmcore.runtime import Runtime

    config = (
        "providers:\n"
        + provider_yaml("good", upstreams[1].base_url, ["fake-model"])
        + "routing: {state: memory}\nmetrics: {enabled: false}\n"
    )
    with GatewayProcess(tmp_path, config) as gw:
        port = int(gw.url.rsplit(":", 1)[1])
        runtime = Runtime(parse_config(config + f"serve: {{port: {port}}}\n"))
        agent = runtime.agent_types["codex"](
            AgentConfig(name="codex", plugin="codex", model="good/fake-model", via_gateway=True)
        )
        routed = gateway_agents.through_gateway(runtime.config, agent)
        assert gateway_agents._started == {}  # reused, nothing started
        assert routed.config.base_url == gw.url + "/v1"
        assert routed.config.env[gateway_agents.KEY_VAR] == gateway_agents.PLACEHOLDER_KEY
        assert routed.config.api_key_env == gateway_agents.KEY_VAR
        assert agent.config.base_url is None and agent.config.env == {}
