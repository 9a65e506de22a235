"""The agent runner with small fake agent scripts: argv, env, files changed, kill, cancel."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import llmcore
import pytest
from agent_env import alive, git_repo, script_agent, write_script
from llmcore.types import AgentTask


def test_prompt_is_passed_as_one_value_and_events_are_parsed(tmp_path: Path) -> None:
    script = write_script(
        tmp_path,
        """
        import json, sys
        print(json.dumps({"type": "start", "argv": sys.argv[1:]}), flush=True)
        print("some plain text")
        print(json.dumps({"type": "result", "text": "done"}))
    """,
    )
    agent: Any = script_agent(script)
    seen: list[dict[str, Any]] = []
    prompt = "--help; rm -rf / $(echo hi) 'quoted'"
    result = agent.run(AgentTask(prompt=prompt, cwd=str(tmp_path)), on_event=seen.append)
    assert result.success and result.exit_code == 0
    assert [e["type"] for e in seen] == ["start", "result"]
    assert seen[0]["argv"] == ["--", prompt]  # one argument, untouched by any shell
    assert result.events == 2
    assert result.log_path and "some plain text" in Path(result.log_path).read_text()


def test_events_reach_the_callback_while_the_agent_is_still_running(tmp_path: Path) -> None:
    # The agent waits for a file that only the callback creates: the run can only finish if
    # the first event was delivered before the process ended.
    flag = tmp_path / "flag"
    script = write_script(
        tmp_path,
        f"""
        import json, os, time
        print(json.dumps({{"type": "step"}}), flush=True)
        for _ in range(200):
            if os.path.exists({str(flag)!r}):
                print(json.dumps({{"type": "saw_flag"}}), flush=True)
                break
            time.sleep(0.05)
    """,
    )
    agent: Any = script_agent(script)
    seen: list[str] = []

    def on_event(ev: dict[str, Any]) -> None:
        seen.append(ev["type"])
        flag.touch()

    agent.run(AgentTask(prompt="x", cwd=str(tmp_path)), on_event=on_event)
    assert seen == ["step", "saw_flag"]


def test_other_providers_keys_are_not_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = write_script(
        tmp_path,
        """
        import json, os
        print(json.dumps({k: os.environ.get(k) for k in
              ["MINE_API_KEY", "OTHER_API_KEY", "GITHUB_TOKEN", "CONFIGURED_KEY",
               "FROM_ENV_KEY", "HOME", "PLAIN_VAR"]}))
    """,
    )
    for k, v in {
        "MINE_API_KEY": "m",
        "OTHER_API_KEY": "o",
        "GITHUB_TOKEN": "g",
        "FROM_ENV_KEY": "f",
        "PLAIN_VAR": "p",
    }.items():
        monkeypatch.setenv(k, v)
    agent: Any = script_agent(
        script,
        own_env_keys=("MINE_API_KEY",),
        env={"CONFIGURED_KEY": "c"},
        api_key_env="FROM_ENV_KEY",
    )
    agent.run(AgentTask(prompt="x", cwd=str(tmp_path)))
    env = agent.last_run.events[0]
    assert env["MINE_API_KEY"] == "m" and env["CONFIGURED_KEY"] == "c"
    assert env["FROM_ENV_KEY"] == "f"
    assert env["OTHER_API_KEY"] is None and env["GITHUB_TOKEN"] is None
    assert env["PLAIN_VAR"] == "p" and env["HOME"]

    agent2: Any = script_agent(script, inherit_env=True)
    agent2.run(AgentTask(prompt="x", cwd=str(tmp_path)))
    assert agent2.last_run.events[0]["OTHER_API_KEY"] == "o"


def test_files_changed_in_git_ignore_files_already_dirty(tmp_path: Path) -> None:
    repo = git_repo(
        tmp_path / "repo",
        {"a.txt": "a\n", "b.txt": "b\n", "c.txt": "c\n", "d.txt": "d\n", "keep.txt": "k\n"},
    )
    (repo / "a.txt").write_text("dirty before\n")  # dirty, left alone by the agent
    (repo / "b.txt").write_text("dirty before\n")  # dirty, changed again by the agent
    (repo / "old_untracked.txt").write_text("x")  # untracked before, left alone
    script = write_script(
        tmp_path,
        """
        import os, subprocess
        open("b.txt", "w").write("changed by agent\\n")
        open("c.txt", "w").write("changed by agent\\n")
        os.remove("d.txt")
        os.makedirs("sub", exist_ok=True)
        open("sub/new.txt", "w").write("new\\n")
        open("keep.txt", "w").write("k\\n")  # rewritten with the same content
        open(".agent-cache", "w").write("ignored")
        open("committed.txt", "w").write("c")
        subprocess.run(["git", "add", "committed.txt"], check=True)
        subprocess.run(["git", "commit", "-q", "-m", "agent"], check=True)
    """,
    )
    agent: Any = script_agent(script, ignored=(".agent-cache",))
    result = agent.run(AgentTask(prompt="x", cwd=str(repo)))
    assert result.success
    assert result.files_modified == ["b.txt", "c.txt", "committed.txt", "d.txt", "sub/new.txt"]


def test_files_changed_outside_git_from_a_snapshot(tmp_path: Path) -> None:
    work = tmp_path / "plain"
    (work / "node_modules" / "pkg").mkdir(parents=True)
    (work / "same.txt").write_text("same")
    (work / "edit.txt").write_text("before")
    (work / "gone.txt").write_text("bye")
    script = write_script(
        tmp_path,
        """
        import os
        open("edit.txt", "w").write("after!")
        open("new.txt", "w").write("n")
        os.remove("gone.txt")
        open("node_modules/pkg/x.js", "w").write("skipped dir")
    """,
    )
    agent: Any = script_agent(script)
    result = agent.run(AgentTask(prompt="x", cwd=str(work)))
    assert result.files_modified == ["edit.txt", "gone.txt", "new.txt"]


def test_worktree_isolation_leaves_the_checkout_untouched(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo", {"app.py": "print(1)\n"})
    script = write_script(
        tmp_path,
        """
        open("app.py", "w").write("print(2)\\n")
        open("added.py", "w").write("x = 1\\n")
    """,
    )
    agent: Any = script_agent(script, isolation="worktree")
    result = agent.run(AgentTask(prompt="x", cwd=str(repo)))
    assert result.worktree and Path(result.worktree).is_dir()
    assert Path(result.worktree, "app.py").read_text() == "print(2)\n"
    assert (repo / "app.py").read_text() == "print(1)\n"
    assert not (repo / "added.py").exists()
    assert result.files_modified == ["added.py", "app.py"]
    listed = subprocess.run(
        ["git", "worktree", "list"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout
    assert os.path.realpath(result.worktree) in listed


SPAWNER = """
    import json, os, signal, subprocess, sys, time
    # A child, and a grandchild that ignores SIGTERM (only SIGKILL stops it).
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    grand = subprocess.Popen([sys.executable, "-c",
        "import signal, time, subprocess, sys\\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n"
        "p = subprocess.Popen([sys.executable, '-c', "
        "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)'])\\n"
        "print(p.pid, flush=True)\\n"
        "time.sleep(300)"], stdout=subprocess.PIPE, text=True)
    grandchild = int(grand.stdout.readline())
    print(json.dumps({"type": "pids", "pids": [os.getpid(), child.pid, grand.pid, grandchild]}),
          flush=True)
    time.sleep(float(os.environ.get("MAIN_SLEEP", "300")))
"""


@pytest.mark.slow  # waits out the timeout and the SIGTERM grace period before the SIGKILL
def test_timeout_kills_the_whole_group_including_a_term_ignoring_grandchild(tmp_path: Path) -> None:
    script = write_script(tmp_path, SPAWNER)
    agent: Any = script_agent(script)
    pids: list[int] = []
    t0 = time.monotonic()
    with pytest.raises(llmcore.AgentTimeoutError) as info:
        agent.run(
            AgentTask(prompt="x", cwd=str(tmp_path), timeout=2.0),
            on_event=lambda e: pids.extend(e.get("pids", [])),
        )
    elapsed = time.monotonic() - t0
    assert len(pids) == 4
    assert not [p for p in pids if alive(p)], "a process of the run survived it"
    assert elapsed < 2.0 + 3.0 + 3.0  # timeout + grace + slack; never the 300 s sleeps
    assert info.value.result is not None and info.value.result.log_path
    assert "timeout" in str(info.value) and info.value.hint


@pytest.mark.slow  # lets the grandchild start, cancels, then waits for the grace period
def test_cancelling_async_run_agent_stops_the_process_group(tmp_path: Path) -> None:
    script = write_script(tmp_path, SPAWNER)
    agent: Any = script_agent(script)
    pids: list[int] = []

    async def main() -> None:
        client = llmcore.AsyncClient(agents=[agent])
        task = asyncio.create_task(
            client.run_agent(
                "fake",
                "x",
                cwd=tmp_path,
                timeout=120,
                on_event=lambda e: pids.extend(e.get("pids", [])),
            )
        )
        for _ in range(200):
            if pids:
                break
            await asyncio.sleep(0.05)
        assert pids, "the agent never started"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    t0 = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - t0 < 30
    assert not [p for p in pids if alive(p)], "a process survived the cancelled run"


def test_sync_client_runs_agent_and_reports_result(tmp_path: Path) -> None:
    script = write_script(
        tmp_path,
        """
        import json
        open("out.txt", "w").write("x")
        print(json.dumps({"type": "result"}))
    """,
    )
    agent: Any = script_agent(script)
    with llmcore.Client(agents=[agent]) as client:
        result = client.run_agent("fake", "do it", cwd=tmp_path)
    assert result.success and result.files_modified == ["out.txt"]
    d = result.to_dict()
    for key in (
        "success",
        "output",
        "files_modified",
        "duration_s",
        "exit_code",
        "session_id",
        "usage",
        "cost_usd",
        "error",
        "log_path",
    ):
        assert key in d


def test_failed_exit_is_reported_with_the_last_stderr_line(tmp_path: Path) -> None:
    script = write_script(
        tmp_path,
        """
        import sys
        print("working")
        print("fatal: the model is gone", file=sys.stderr)
        sys.exit(3)
    """,
    )
    agent: Any = script_agent(script)
    result = agent.run(AgentTask(prompt="x", cwd=str(tmp_path)))
    assert not result.success and result.exit_code == 3
    assert result.error and "exited with code 3" in result.error
    assert "the model is gone" in result.error
