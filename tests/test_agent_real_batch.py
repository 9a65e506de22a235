"""The batch done-when: 20 tasks over three real agents (Claude Code, Codex, Gemini CLI)
against local fake endpoints, 4 in parallel, each in its own worktree; every result, branch
and diff right; merging two brings their changes; `agent clean` leaves nothing behind.

The fakes answer by what each request says (the requests of four runs interleave): a first
turn gets a tool call that writes the file the prompt names, inside the worktree the program
reports as its working directory; a turn carrying the tool's result gets the final answer.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import llmcore
import pytest
from agent_env import git_repo, real_program, run_cli
from llmcore.config import AgentConfig
from llmcore.testing.fakes import AnthropicFake, GeminiFake, Reply, ResponsesFake

pytestmark = pytest.mark.real_agent
KEY = "sk-test-batch-0123456789abcdef"
TASK = re.compile(r"TASKFILE:(t\d+\.txt)")


def _worktree(body: str) -> str:
    import platformdirs

    base = os.path.join(platformdirs.user_state_dir("llmcore"), "worktrees")
    m = re.search(re.escape(base) + r"/([A-Za-z0-9_.-]+)", body)
    assert m, "the program did not tell the model its working directory"
    return os.path.join(base, m.group(1))


def _decide(req: Any, kind: str) -> Reply:
    body = (req.body or b"").decode("utf-8", "replace")
    m = TASK.search(body)
    if not m:  # a side request (title, routing): a plain answer
        return Reply(text="ok", usage=(5, 1))
    name = m.group(1)
    done = {"claude": "tool_result", "codex": "function_call_output", "gemini": "functionResponse"}[
        kind
    ]
    if done in body:
        return Reply(text=f"Wrote {name}.", usage=(20, 3))
    root = _worktree(body)
    content = f"content of {name}\n"
    call = {
        "claude": {
            "name": "Write",
            "id": f"toolu_{name[:3]}",
            "arguments": {"file_path": f"{root}/{name}", "content": content},
        },
        "codex": {
            "name": "exec_command",
            "id": f"call_{name[:3]}",
            "arguments": {
                "cmd": f"printf 'content of {name}\\n' > {name}",
                "workdir": root,
                "tty": False,
            },
        },
        "gemini": {
            "name": "write_file",
            "arguments": {"file_path": f"{root}/{name}", "content": content},
        },
    }[kind]
    return Reply(text="", tool_calls=[call], usage=(10, 2))


def _smart(base: type, kind: str) -> Any:
    class Smart(base):  # type: ignore[misc, valid-type]
        def next_reply(self, req: Any) -> Reply:
            self.record(req)
            return _decide(req, kind)

    return Smart()


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[llmcore.Client]:
    from llmcore_claude_code.agent import ClaudeCodeAgent
    from llmcore_codex.agent import CodexAgent
    from llmcore_gemini.agent import GeminiAgent

    monkeypatch.setenv("LLMCORE_TEST_KEY", KEY)
    home = tmp_path / "claude-home"
    home.mkdir()
    with ExitStack() as stack:
        fakes = {
            k: stack.enter_context(_smart(cls, k))
            for k, cls in (
                ("claude", AnthropicFake),
                ("codex", ResponsesFake),
                ("gemini", GeminiFake),
            )
        }
        agents = []
        for kind, cls, prog, url, model, extra in (
            (
                "claude",
                ClaudeCodeAgent,
                "claude",
                fakes["claude"].url,
                "claude-fake-1",
                {"HOME": str(home)},
            ),
            ("codex", CodexAgent, "codex", fakes["codex"].base_url, "gpt-fake", {}),
            ("gemini", GeminiAgent, "gemini", fakes["gemini"].url, "gemini-fake", {}),
        ):
            exe, path = real_program(prog)
            agents.append(
                cls(
                    AgentConfig(
                        name=kind,
                        plugin=cls.type_name,
                        command=exe,
                        base_url=url,
                        api_key_env="LLMCORE_TEST_KEY",
                        model=model,
                        mode="auto_edit",
                        timeout=240,
                        isolation="worktree",
                        env={"PATH": path, **extra},
                    )
                )
            )
        with llmcore.Client(agents=agents) as c:
            yield c


def test_twenty_tasks_three_agents_four_parallel_in_worktrees(
    client: llmcore.Client, tmp_path: Path
) -> None:
    repo = git_repo(tmp_path / "repo")
    kinds = ("claude", "codex", "gemini")
    tasks = [
        {
            "id": f"t{i:02d}",
            "agent": kinds[i % 3],
            "cwd": str(repo),
            "prompt": f"Create the file TASKFILE:t{i:02d}.txt",
        }
        for i in range(20)
    ]
    out = client.run_agents(tasks, parallel=4)

    problems = [(o.name, o.agent, o.state, o.error) for o in out if o.state != "ok"]
    assert not problems, problems
    for i, o in enumerate(out):
        r = o.result
        name = f"t{i:02d}.txt"
        assert r is not None and r.success and o.agent == kinds[i % 3]
        assert r.files_modified == [name], (o.name, r.files_modified)
        assert r.branch == f"llmcore/{o.agent}/{r.run_id}"
        assert f"+content of {name}" in (r.diff or ""), (o.name, r.diff)
        assert Path(r.worktree or "", name).read_text() == f"content of {name}\n"
    assert not any((repo / f"t{i:02d}.txt").exists() for i in range(20))  # untouched

    # Merging two brings their changes into the checkout.
    first, second = out[0].result, out[1].result
    assert first is not None and second is not None
    assert client.merge_run(first).how == "fast-forward"
    assert client.merge_run(second).how == "merge"
    assert (repo / "t00.txt").read_text() == "content of t00.txt\n"
    assert (repo / "t01.txt").read_text() == "content of t01.txt\n"

    # `agent clean` leaves no worktree or branch behind.
    cleaned = run_cli("agent", "clean", "--keep", "none", "--json")
    assert cleaned.returncode == 0, cleaned.stderr
    assert len(json.loads(cleaned.stdout)["removed"]) == 20

    def git(*a):
        return subprocess.run(
            ["git", *a],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    assert git("branch", "--list", "llmcore/*") == ""
    assert len(git("worktree", "list").splitlines()) == 1
    assert all(not Path(o.result.worktree or "").exists() for o in out if o.result)
