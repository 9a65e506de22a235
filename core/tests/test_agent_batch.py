"""Parallel batches: Client.run_agents / AsyncClient / `llmcore agent batch`, with fake
programs: results in order, worktrees per task, cooldowns, cancel, bounded memory."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import llmcore
import pytest
from agent_env import alive, git_repo, script_agent, write_script
from llmcore.agent_batch import KEEP_TEXT, load_tasks
from llmcore.agent_worktrees import list_runs

ECHO = """
    import json, os, sys, time
    prompt = sys.argv[-1]
    if prompt.startswith("sleep"):
        time.sleep(float(prompt.split()[1]))
    if prompt.startswith("write "):
        name = prompt.split()[1]
        open(name, "w").write(name + "\\n")
    if prompt.startswith("big"):
        sys.stdout.write(("y" * 1023 + "\\n") * 512)
    print(json.dumps({"type": "result", "prompt": prompt, "pid": os.getpid()}), flush=True)
"""


def test_run_agents_in_parallel_keeps_order_and_counts(tmp_path: Path) -> None:
    agent: Any = script_agent(write_script(tmp_path, ECHO))
    client = llmcore.Client(agents=[agent])
    running = 0
    most = 0
    lock = threading.Lock()

    def on_update(o: Any) -> None:
        nonlocal running, most
        with lock:
            running = sum(1 for x in outcomes_ref if x.state == "running")
            most = max(most, running)

    tasks = [
        {"agent": "fake", "prompt": f"sleep 0.3 #{i}", "cwd": str(tmp_path), "id": f"t{i}"}
        for i in range(8)
    ]
    outcomes_ref: list[Any] = []
    from llmcore.agent_batch import Batch

    batch = Batch(client, tasks, parallel=3, on_update=on_update)
    outcomes_ref.extend(batch.outcomes)
    out = batch.run()
    assert [o.name for o in out] == [f"t{i}" for i in range(8)]
    assert all(o.state == "ok" and o.result and o.result.success for o in out)
    assert 1 < most <= 3


def test_a_hundred_tasks_keep_memory_bounded(tmp_path: Path) -> None:
    agent: Any = script_agent(write_script(tmp_path, ECHO))
    client = llmcore.Client(agents=[agent])
    out = client.run_agents(
        [{"agent": "fake", "prompt": f"big {i}", "cwd": str(tmp_path)} for i in range(100)],
        parallel=8,
    )
    assert len(out) == 100 and all(o.state == "ok" for o in out)
    # Each task printed 512 KiB; what a finished task keeps is capped.
    assert all(len(o.result.output) <= KEEP_TEXT for o in out)


def test_rate_limited_agent_is_cooled_down_for_the_rest_of_the_batch(tmp_path: Path) -> None:
    calls = tmp_path / "limited-calls"
    limited = write_script(
        tmp_path,
        f"""
        import sys
        open({str(calls)!r}, "a").write("x")
        print("Error: 429 Too Many Requests: rate limit reached", file=sys.stderr)
        sys.exit(1)
    """,
        name="limited.py",
    )

    class Limited(llmcore.Agent):
        type_name = program = "limited"

        def build(self, task: Any) -> llmcore.Invocation:
            return llmcore.Invocation(argv=[sys.executable, str(limited)])

        def finish(self, task: Any, run: Any) -> llmcore.AgentResult:
            raise self.error_from_text(run.stderr_tail) or AssertionError(run.stderr_tail)

    lim = Limited(llmcore.AgentConfig(name="lim", command=sys.executable))
    good: Any = script_agent(write_script(tmp_path, ECHO), name="good")
    client = llmcore.Client(agents=[lim, good])
    tasks = [
        {"agent": ["lim", "good"], "prompt": f"task {i}", "cwd": str(tmp_path)} for i in range(4)
    ] + [{"agent": "lim", "prompt": "only lim", "cwd": str(tmp_path)}]
    out = client.run_agents(tasks, parallel=1)
    assert [o.agent for o in out[:4]] == ["good"] * 4
    assert all(o.state == "ok" for o in out[:4])
    assert calls.read_text() == "x"  # tried once, then skipped for the rest of the batch
    assert out[4].state == "failed" and out[4].error_type == "AgentRateLimitError"
    assert "cooling down" in (out[4].error or "")
    assert "lim" in client.router.cooldowns()


def test_async_run_agents_cancel_stops_every_process(tmp_path: Path) -> None:
    agent: Any = script_agent(write_script(tmp_path, ECHO))

    async def main() -> list[int]:
        client = llmcore.AsyncClient(agents=[agent])
        pids: list[int] = []

        def on_update(o: Any) -> None:
            pass

        task = asyncio.ensure_future(
            client.run_agents(
                [{"agent": "fake", "prompt": "sleep 60", "cwd": str(tmp_path)}] * 6,
                parallel=3,
                on_update=on_update,
            )
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            pids = _python_children_running(str(tmp_path))
            if len(pids) >= 3:
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return pids

    pids = asyncio.run(main())
    assert len(pids) >= 3
    assert not [p for p in pids if alive(p)]


def _python_children_running(marker: str) -> list[int]:
    me = os.getpid()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_bytes()
            cmd = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(b")") + 2 :].split()[1])
        if ppid == me and b"sleep 60" in cmd:
            found.append(int(name))
    return found


# -- the CLI ----------------------------------------------------------------------------------
def _cli_setup(tmp_path: Path, tasks: list[dict[str, Any]], **top: Any) -> tuple[Path, dict]:
    exe = tmp_path / "fakeclaude"
    exe.write_text(
        f"#!{sys.executable}\n"
        + """
import json, os, subprocess, sys, time
prompt = sys.argv[-1]
if prompt.startswith("hang"):
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                         start_new_session=True)
    with open(os.environ["PIDS_FILE"], "a") as f:
        f.write(f"{os.getpid()}\\n{p.pid}\\n")
    time.sleep(300)
if prompt.startswith("write "):
    name = prompt.split()[1]
    open(name, "w").write(name + "\\n")
ok = not prompt.startswith("fail")
print(json.dumps({"type": "result", "subtype": "success" if ok else "error_during_execution",
                  "is_error": False, "result": "did " + prompt, "session_id": "s",
                  "usage": {"input_tokens": 10, "output_tokens": 2}}))
sys.exit(0 if ok else 1)
"""
    )
    exe.chmod(0o755)
    cfg = tmp_path / "llmcore.yaml"
    cfg.write_text(
        "agents:\n  fc:\n    plugin: claude-code\n"
        f"    command: {json.dumps(str(exe))}\n    timeout: 120\n"
        "routing:\n  state: memory\n"
    )
    tf = tmp_path / "tasks.yaml"
    import yaml

    tf.write_text(yaml.safe_dump({**top, "tasks": tasks}))
    env = {**os.environ, "LLMCORE_CONFIG": str(cfg), "PIDS_FILE": str(tmp_path / "pids")}
    return tf, env


def test_cli_batch_json_lines_summary_and_exit_status(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    tasks = [{"id": f"w{i}", "prompt": f"write f{i}.txt"} for i in range(3)] + [
        {"id": "bad", "prompt": "fail please"}
    ]
    tf, env = _cli_setup(
        tmp_path,
        tasks,
        parallel=2,
        defaults={"agent": "fc", "cwd": str(repo), "isolation": "worktree"},
    )
    out = subprocess.run(
        [sys.executable, "-m", "llmcore", "agent", "batch", str(tf), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 1, out.stderr
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    finished = {x["task"]: x for x in lines if "task" in x}
    assert set(finished) == {"w0", "w1", "w2", "bad"}
    assert lines[-1]["summary"]["ok"] == 3 and lines[-1]["summary"]["failed"] == 1
    w1 = finished["w1"]["result"]
    assert w1["branch"].startswith("llmcore/fc/") and "+f1.txt" in w1["diff"]
    assert w1["files_modified"] == ["f1.txt"]
    assert not (repo / "f1.txt").exists()


def test_load_tasks_errors_are_clear(tmp_path: Path) -> None:
    tf = tmp_path / "t.yaml"
    tf.write_text("tasks:\n  - agent: a\n    promt: typo\n")
    with pytest.raises(llmcore.ConfigError, match="unknown key"):
        load_tasks(tf)
    tf.write_text("tasks:\n  - prompt: no agent\n")
    with pytest.raises(llmcore.ConfigError, match="'agent'"):
        load_tasks(tf)
    tf.write_text("tasks:\n  - agent: a\n    prompt_file: p.md\n    cwd: sub\n")
    (task,), _ = load_tasks(tf)
    assert task.prompt_file == str(tmp_path / "p.md") and task.cwd == str(tmp_path / "sub")


def ctrl_c_as_on_a_terminal() -> None:
    """In the child: SIGINT back to its default. A test run started in the background
    (`pytest &`) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt;
    a user pressing Ctrl-C at a terminal has the default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_to_agent_batch_cancels_all_leaving_nothing(tmp_path: Path, sig: int) -> None:
    repo = git_repo(tmp_path / "repo")
    tasks = [{"prompt": f"hang {i}"} for i in range(5)]
    tf, env = _cli_setup(
        tmp_path,
        tasks,
        parallel=3,
        defaults={"agent": "fc", "cwd": str(repo), "isolation": "worktree"},
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmcore", "agent", "batch", str(tf), "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_as_on_a_terminal,
    )
    pids_file = tmp_path / "pids"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if pids_file.exists() and len(pids_file.read_text().split()) >= 6:
                break
            time.sleep(0.1)
        pids = [int(x) for x in pids_file.read_text().split()]
        assert len(pids) >= 6
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + sig, stderr
    assert not [p for p in pids if alive(p)]
    summary = json.loads(stdout.splitlines()[-1])
    assert summary["cancelled"] is True and summary["summary"]["cancelled"] == 5
    # No stray worktree or branch: the cancelled tasks changed nothing.
    assert (
        subprocess.run(
            ["git", "branch", "--list", "llmcore/*"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        == ""
    )
    assert (
        len(
            subprocess.run(
                ["git", "worktree", "list"], cwd=repo, capture_output=True, text=True, check=True
            ).stdout.splitlines()
        )
        == 1
    )
    assert list_runs() == [] or all(r.source != str(repo) for r in list_runs())


def test_live_table_shows_every_task_with_its_numbers(tmp_path: Path) -> None:
    from io import StringIO

    from llmcore.cli.agent_cmds import _BatchTable
    from rich.console import Console

    agent: Any = script_agent(write_script(tmp_path, ECHO))
    client = llmcore.Client(agents=[agent])
    out = client.run_agents(
        [
            {"agent": "fake", "prompt": "hello", "cwd": str(tmp_path), "id": "greet"},
            {"agent": "fake", "prompt": "sleep 0", "cwd": str(tmp_path)},
        ]
    )
    out[0].result.cost_usd = 0.25
    table = _BatchTable(enabled=False)
    table.outcomes = out
    buf = StringIO()
    Console(file=buf, width=120).print(table.render())
    text = buf.getvalue()
    for needle in (
        "task",
        "agent",
        "state",
        "elapsed",
        "files",
        "tokens",
        "cost",
        "greet",
        "fake",
        "ok",
        "$0.2500",
    ):
        assert needle in text, needle
