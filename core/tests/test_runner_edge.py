"""Edge cases of agent runs, with tiny fake agent scripts standing in for the real programs."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import llmcore
import pytest
from agent_env import alive, script_agent, write_script
from llmcore import runner
from llmcore.config import AgentConfig
from llmcore.types import AgentTask


def test_child_left_running_after_the_agent_exits_is_stopped(tmp_path: Path) -> None:
    script = write_script(
        tmp_path,
        """
        import json, subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(json.dumps({"type": "child", "pid": child.pid}), flush=True)
        # exits at once, leaving the child behind
    """,
    )
    agent: Any = script_agent(script)
    t0 = time.monotonic()
    result = agent.run(AgentTask(prompt="x", cwd=str(tmp_path)))
    assert result.success
    pid = agent.last_run.events[0]["pid"]
    assert not alive(pid), "the agent's leftover child outlived the run"
    assert time.monotonic() - t0 < 10


def test_a_gigabyte_of_output_keeps_memory_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1 GiB in 64 KiB lines with a JSON event every 64 lines (one per 4 MiB), after one 8 MiB
    # line (longer than MAX_LINE); the log file is capped smaller here
    # so the test does not write 256 MiB to disk.
    monkeypatch.setattr(runner, "LOG_MAX_BYTES", 8 * 1024 * 1024)
    script = write_script(
        tmp_path,
        """
        import json, sys
        out = sys.stdout.buffer
        line = b"x" * 65535 + b"\\n"
        block = line * 63 + (json.dumps({"type": "tick"}).encode().ljust(65535) + b"\\n")
        out.write(b"y" * (8 * 1024 * 1024) + b"\\n")
        for _ in range((1024 * 1024 * 1024 - 8 * 1024 * 1024) // len(block)):
            out.write(block)
        out.write(json.dumps({"type": "result", "text": "the end"}).encode() + b"\\n")
        out.flush()
    """,
    )
    agent: Any = script_agent(script)
    result = agent.run(AgentTask(prompt="x", cwd=str(tmp_path), timeout=600))
    run = agent.last_run
    assert result.success
    assert run.stdout_bytes > 1_000_000_000  # it really read all of it
    assert len(run.stdout_tail) <= runner.TAIL_BYTES + 65536
    assert len(run.events) <= runner.MAX_EVENTS
    blocks = (1024**3 - 8 * 1024 * 1024) // (64 * 65536)
    assert run.events_total == blocks + 1 and result.events == run.events_total
    assert run.events[-1] == {"type": "result", "text": "the end"}  # the tail is kept
    log_size = os.path.getsize(run.log_path)
    assert runner.LOG_MAX_BYTES <= log_size < runner.LOG_MAX_BYTES + 1024
    assert b"log truncated" in Path(run.log_path).read_bytes()[-200:]


def test_invalid_json_lines_are_skipped_not_fatal(tmp_path: Path) -> None:
    script = write_script(
        tmp_path,
        """
        print('{"type": "ok", "n": 1}')
        print('{"type": "broken", ')
        print('[1, 2, 3]')
        print('{not json at all}')
        print('"a string"')
        print('{"type": "ok", "n": 2}')
    """,
    )
    agent: Any = script_agent(script)
    result = agent.run(AgentTask(prompt="x", cwd=str(tmp_path)))
    assert result.success
    assert [e["n"] for e in agent.last_run.events] == [1, 2]
    assert '{"type": "broken", ' in agent.last_run.stdout_tail


def test_crash_mid_run_is_a_failed_result_with_partial_output(tmp_path: Path) -> None:
    script = write_script(
        tmp_path,
        """
        import json, os, signal, sys
        print(json.dumps({"type": "step", "n": 1}), flush=True)
        open("half.txt", "w").write("partial")
        print("Segmentation fault coming", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGSEGV)
    """,
    )
    agent: Any = script_agent(script)
    result = agent.run(AgentTask(prompt="x", cwd=str(tmp_path)))
    assert not result.success
    assert result.exit_code == -11
    assert result.error and "signal 11" in result.error
    assert result.files_modified == ["half.txt"]
    assert result.events == 1


def test_prompt_starting_with_a_dash_is_never_a_flag(tmp_path: Path) -> None:
    script = write_script(
        tmp_path,
        """
        import argparse, json
        p = argparse.ArgumentParser()
        p.add_argument("--delete-everything", action="store_true")
        p.add_argument("prompt")
        a = p.parse_args()
        print(json.dumps({"delete": a.delete_everything, "prompt": a.prompt}))
    """,
    )
    agent: Any = script_agent(script)
    result = agent.run(AgentTask(prompt="--delete-everything", cwd=str(tmp_path)))
    assert result.success
    assert agent.last_run.events[0] == {"delete": False, "prompt": "--delete-everything"}


def test_missing_working_directory_fails_before_starting(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    script = write_script(tmp_path, f"open({str(marker)!r}, 'w')")
    agent: Any = script_agent(script)
    with pytest.raises(llmcore.AgentError) as info:
        agent.run(AgentTask(prompt="x", cwd=str(tmp_path / "no" / "such")))
    assert "does not exist" in str(info.value) and info.value.hint
    assert not marker.exists()
    file_cwd = tmp_path / "a-file"
    file_cwd.write_text("")
    with pytest.raises(llmcore.AgentError, match="is not a directory"):
        agent.run(AgentTask(prompt="x", cwd=str(file_cwd)))


def test_missing_program_is_a_clear_not_found_error(tmp_path: Path) -> None:
    class Nothing(llmcore.Agent):
        type_name = "nothing"
        program = "llmcore-no-such-agent-program"

        def build(self, task: Any) -> Any:
            raise AssertionError("must not be built")

    agent = Nothing(AgentConfig(name="nothing"))
    assert agent.available() is False and agent.version() is None
    with pytest.raises(llmcore.AgentNotFoundError) as info:
        agent.run(AgentTask(prompt="x", cwd=str(tmp_path)))
    assert "llmcore-no-such-agent-program" in str(info.value)
    assert "agents.nothing.command" in (info.value.hint or "")
    with_path = Nothing(AgentConfig(name="nothing", command=str(tmp_path / "missing-bin")))
    assert with_path.available() is False


def test_callback_that_raises_does_not_break_the_run(tmp_path: Path) -> None:
    script = write_script(
        tmp_path,
        """
        import json
        for i in range(3):
            print(json.dumps({"n": i}))
    """,
    )
    agent: Any = script_agent(script)

    def boom(_: dict[str, Any]) -> None:
        raise RuntimeError("display broke")

    result = agent.run(AgentTask(prompt="x", cwd=str(tmp_path)), on_event=boom)
    assert result.success and result.events == 3


def test_version_is_read_and_cached(tmp_path: Path) -> None:
    prog = tmp_path / "fakeprog"
    prog.write_text(f"#!{sys.executable}\nprint('fakeprog-cli 1.2.3')\n")
    prog.chmod(0o755)

    class Fake(llmcore.Agent):
        type_name = "fakeprog"
        program = "fakeprog"

    agent = Fake(AgentConfig(name="f", command=str(prog)))
    assert agent.available() and agent.version() == "1.2.3"


def test_cli_reports_a_missing_program_and_a_missing_directory(tmp_path: Path) -> None:
    import json

    from agent_env import run_cli

    cfg = tmp_path / "llmcore.yaml"
    cfg.write_text("agents:\n  q:\n    plugin: qwen\n    command: /nonexistent/qwen\n")
    listed = run_cli("--config", str(cfg), "agents", "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert {
        k: row[k]
        for k in ("name", "plugin", "found", "version", "path", "mode", "model", "base_url")
    } == {
        "name": "q",
        "plugin": "qwen",
        "found": False,
        "version": None,
        "path": None,
        "mode": "suggest",
        "model": None,
        "base_url": None,
    }
    assert row["options"]["bare"] is True  # the effective options, defaults filled in
    missing = run_cli("--config", str(cfg), "agent", "run", "q", "hi", "--cwd", str(tmp_path))
    assert missing.returncode == 1
    assert "was not found" in missing.stderr and "agents.q.command" in missing.stderr
    assert "Traceback" not in missing.stderr
    nodir = run_cli(
        "--config", str(cfg), "agent", "run", "q", "hi", "--cwd", str(tmp_path / "nope")
    )
    assert nodir.returncode == 1 and "does not exist" in nodir.stderr
