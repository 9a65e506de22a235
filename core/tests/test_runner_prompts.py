"""Any prompt: control bytes refused before spawning, prompt files, long prompts by stdin,
no descriptor leaked on any error path; logs private and pruned."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path
from typing import Any

import llmcore
import pytest
from agent_env import run_cli, script_agent, write_script
from llmcore.agent_logs import prune_logs
from llmcore.types import AgentTask

ECHO = """
    import json, sys
    data = sys.stdin.read()
    print(json.dumps({"type": "result", "argv": sys.argv[1:], "stdin_len": len(data),
                      "stdin_tail": data[-40:]}), flush=True)
"""


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("bad", ["fix\x00this", "bell\x07", "esc\x1b[31m", "del\x7f"])
def test_control_bytes_are_a_bad_request_before_anything_starts(tmp_path: Path, bad: str) -> None:
    marker = tmp_path / "started"
    script = write_script(tmp_path, f"open({str(marker)!r}, 'w').write('x')\n")
    agent: Any = script_agent(script)
    before = _fds()
    with pytest.raises(llmcore.BadRequestError) as info:
        agent.run(AgentTask(prompt=bad, cwd=str(tmp_path)))
    assert "control character" in str(info.value) and info.value.hint
    assert not marker.exists()
    assert _fds() == before


def test_tabs_and_newlines_are_fine_and_an_empty_prompt_is_refused(tmp_path: Path) -> None:
    agent: Any = script_agent(write_script(tmp_path, ECHO))
    result = agent.run(AgentTask(prompt="a\tb\r\nc", cwd=str(tmp_path)))
    assert result.success and agent.last_run.events[0]["argv"][-1] == "a\tb\r\nc"
    with pytest.raises(llmcore.BadRequestError, match="empty"):
        agent.run(AgentTask(prompt="  \n", cwd=str(tmp_path)))


def test_a_failed_start_leaks_no_descriptor(tmp_path: Path) -> None:
    agent: Any = script_agent(write_script(tmp_path, ECHO))
    agent.run(AgentTask(prompt="warm up", cwd=str(tmp_path)))
    before = _fds()
    # The program exists when checked but exec fails: a directory named like it.
    agent.build = lambda task: llmcore.Invocation(argv=[str(tmp_path)])
    with pytest.raises(llmcore.AgentNotFoundError):
        agent.run(AgentTask(prompt="x", cwd=str(tmp_path)))
    assert _fds() == before


def test_long_prompt_goes_by_the_plugins_stdin(tmp_path: Path) -> None:
    script = write_script(tmp_path, ECHO)

    class StdinAgent(llmcore.Agent):
        type_name = program = "stdin-fake"

        def build(self, task: Any) -> llmcore.Invocation:
            if self.prompt_fits_argv(task.prompt):
                return llmcore.Invocation(argv=[sys.executable, str(script), task.prompt])
            return llmcore.Invocation(
                argv=[sys.executable, str(script)], stdin=task.prompt.encode()
            )

        def finish(self, task: Any, run: Any) -> Any:
            self.last = run.events[0]
            return super().finish(task, run)

    agent = StdinAgent(llmcore.AgentConfig(name="s", command=sys.executable))
    prompt = "x" * (300 * 1024) + "THE-END"
    result = agent.run(AgentTask(prompt=prompt, cwd=str(tmp_path)))
    assert result.success
    assert agent.last["stdin_len"] == len(prompt) and agent.last["stdin_tail"].endswith("THE-END")
    assert agent.last["argv"] == []


def test_prompt_file_through_the_client_and_the_cli(tmp_path: Path) -> None:
    script = write_script(tmp_path, ECHO)
    agent: Any = script_agent(script)
    task_file = tmp_path / "task.md"
    task_file.write_text("# Task\nrename foo to bar\n", encoding="utf-8")
    client = llmcore.Client(agents=[agent])
    result = client.run_agent("fake", prompt_file=task_file, cwd=tmp_path)
    assert result.success
    assert agent.last_run.events[0]["argv"][-1] == "# Task\nrename foo to bar\n"
    with pytest.raises(llmcore.BadRequestError, match="both"):
        client.run_agent("fake", "x", prompt_file=task_file, cwd=tmp_path)
    with pytest.raises(llmcore.BadRequestError, match="cannot read"):
        client.run_agent("fake", prompt_file=tmp_path / "missing.md", cwd=tmp_path)
    (tmp_path / "bin.dat").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(llmcore.BadRequestError, match="not UTF-8"):
        client.run_agent("fake", prompt_file=tmp_path / "bin.dat", cwd=tmp_path)


def test_cli_prompt_file_and_bad_prompt_as_json(tmp_path: Path) -> None:
    exe = tmp_path / "fakeagent"
    exe.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        "print(json.dumps({'type': 'result', 'subtype': 'success', 'is_error': False,"
        " 'result': sys.argv[-1], 'session_id': 's1'}))\n"
    )
    exe.chmod(0o755)
    cfg = tmp_path / "llmcore.yaml"
    cfg.write_text(
        f"agents:\n  fake:\n    plugin: claude-code\n    command: {json.dumps(str(exe))}\n"
    )
    (tmp_path / "task.txt").write_text("do the thing from a file")
    env = {"LLMCORE_CONFIG": str(cfg)}
    out = run_cli(
        "agent",
        "run",
        "fake",
        "--prompt-file",
        str(tmp_path / "task.txt"),
        "--cwd",
        str(tmp_path),
        "--json",
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["output"] == "do the thing from a file"
    out = run_cli("agent", "run", "fake", "nul\x01byte", "--cwd", str(tmp_path), "--json", env=env)
    assert out.returncode != 0
    data = json.loads(out.stdout)
    assert data["error_type"] == "BadRequestError" and "control character" in data["error"]
    out = run_cli("agent", "run", "fake", "--cwd", str(tmp_path), env=env)
    assert out.returncode != 0 and "no prompt given" in out.stderr


def test_logs_are_private_and_pruned_by_age_and_size(tmp_path: Path) -> None:
    agent: Any = script_agent(write_script(tmp_path, ECHO), logs_keep_days=1, logs_max_mb=1)
    logs = Path(agent.run(AgentTask(prompt="x", cwd=str(tmp_path))).log_path).parent
    old = logs / "old-run.log"
    old.write_bytes(b"o" * 10)
    os.utime(old, (time.time() - 3 * 86400,) * 2)
    big = [logs / f"big-{i}.log" for i in range(3)]
    for i, p in enumerate(big):
        p.write_bytes(b"b" * (400 * 1024))
        os.utime(p, (time.time() - 3600 + i,) * 2)
    result = agent.run(AgentTask(prompt="y", cwd=str(tmp_path)))
    log = Path(result.log_path)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert not old.exists()  # older than a day
    assert not big[0].exists() and big[1].exists() and big[2].exists()  # oldest beyond 1 MiB
    assert log.exists()
    # Limits of 0 turn pruning off.
    assert prune_logs(logs, max_age_days=0, max_total_mb=0) == []


def test_metrics_files_are_created_private(tmp_path: Path) -> None:
    from llmcore.metrics import MetricsEvent
    from llmcore.sinks.jsonl import JsonlSink
    from llmcore.sinks.sqlite import connect

    connect(tmp_path / "m.db").close()
    assert stat.S_IMODE((tmp_path / "m.db").stat().st_mode) == 0o600
    sink = JsonlSink({"path": str(tmp_path / "m.jsonl")})
    sink.emit(MetricsEvent(kind="chat"))
    sink.close()
    assert stat.S_IMODE((tmp_path / "m.jsonl").stat().st_mode) == 0o600
