"""Seed option plumbing shared by every agent: approval-name aliases of the modes, and
`llmcore agents --json` showing each agent's effective options."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from agent_env import run_cli, script_agent, write_script
from llmcore.agents import normalize_mode
from llmcore.types import AgentTask


@pytest.mark.parametrize(
    ("given", "mode"),
    [
        ("suggest", "suggest"),
        ("auto-edit", "auto_edit"),
        ("full-auto", "full_auto"),
        ("Full-Auto", "full_auto"),
        ("read-only", "read_only"),
        ("auto_edit", "auto_edit"),
    ],
)
def test_seed_approval_names_are_aliases_of_the_modes(given: str, mode: str) -> None:
    assert normalize_mode(given) == mode


def test_aliases_reach_the_plugin_through_the_runner(tmp_path: Path) -> None:
    script = write_script(tmp_path, "import json, sys\nprint(json.dumps({'argv': sys.argv}))\n")
    # Through the runner: an alias in the task is what the program sees as the mode.
    agent2: Any = script_agent(script)
    seen: list[str] = []
    orig = agent2.build
    agent2.build = lambda t: (seen.append(t.mode), orig(t))[1]
    agent2.run(AgentTask(prompt="x", cwd=str(tmp_path), mode="full-auto"))
    assert seen == ["full_auto"]


def test_cli_mode_alias_and_agents_json_shows_effective_options(tmp_path: Path) -> None:
    exe = tmp_path / "fakeagent"
    exe.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        "mode = sys.argv[sys.argv.index('--permission-mode') + 1]\n"
        "print(json.dumps({'type': 'result', 'subtype': 'success', 'is_error': False,"
        " 'result': mode, 'session_id': 's'}))\n"
    )
    exe.chmod(0o755)
    cfg = tmp_path / "llmcore.yaml"
    cfg.write_text(
        "agents:\n"
        f"  fake:\n    plugin: claude-code\n    command: {json.dumps(str(exe))}\n"
        "    mode: auto-edit\n"
        f"  oc:\n    plugin: opencode\n    command: {json.dumps(str(exe))}\n"
        "    options:\n      attach: auto\n      continue_session: true\n"
        f"  gem:\n    plugin: gemini\n    command: {json.dumps(str(exe))}\n"
        "    options:\n      sandbox: docker\n      excluded_tools: [write_file]\n"
    )
    env = {"LLMCORE_CONFIG": str(cfg)}
    out = run_cli(
        "agent",
        "run",
        "fake",
        "go",
        "--mode",
        "full-auto",
        "--cwd",
        str(tmp_path),
        "--json",
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["output"] == "bypassPermissions"
    rows = {r["name"]: r for r in json.loads(run_cli("agents", "--json", env=env).stdout)}
    assert rows["fake"]["mode"] == "auto_edit"
    assert rows["fake"]["options"]["max_retries"] == 0  # a default, filled in
    assert rows["oc"]["options"]["attach"] == "auto"
    assert rows["oc"]["options"]["continue_session"] is True
    assert rows["gem"]["options"]["sandbox"] == "docker"
    assert rows["gem"]["options"]["excluded_tools"] == ["write_file"]
    assert rows["gem"]["isolation"] == "none" and rows["gem"]["logs_keep_days"] == 14
