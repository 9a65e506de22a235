"""No orphan, ever: fake agent programs that misbehave, then a walk of /proc.

Each fake writes the pids of everything it started to a file; after the run (success,
timeout, cancel, a signal to the CLI) none of them may be alive, and no reader thread of the
run may be left.
"""

from __future__ import annotations

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
from agent_env import alive, script_agent, write_script
from llmcore.agent_procs import RUN_TAG_ENV, proc_table
from llmcore.types import AgentTask

# A helper the fakes use: start ``code`` detached (its own session), optionally with an
# empty environment, and record its pid in PIDS.
SPAWN = """
import json, os, subprocess, sys, time
PIDS = os.environ["PIDS_FILE"]
def record(pid):
    with open(PIDS, "a") as f:
        f.write(f"{pid}\\n")
def detached(code, clear_env=False, keep_stdout=False):
    p = subprocess.Popen([sys.executable, "-c", code], start_new_session=True,
                         env={} if clear_env else None,
                         stdout=None if keep_stdout else subprocess.DEVNULL,
                         stderr=None if keep_stdout else subprocess.DEVNULL)
    record(p.pid)
    return p
record(os.getpid())
"""


def _fake(tmp_path: Path, body: str, name: str = "agent.py") -> Path:
    import textwrap

    return write_script(tmp_path, SPAWN + textwrap.dedent(body), name=name)


def _pids(path: Path, want: int, timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            pids = [int(x) for x in path.read_text().split()]
            if len(pids) >= want:
                return pids
        time.sleep(0.05)
    raise AssertionError(
        f"the fake recorded fewer than {want} pids: "
        f"{path.read_text() if path.exists() else '(none)'}"
    )


def _no_run_process_alive(pids: list[int]) -> None:
    live = [p for p in pids if alive(p)]
    assert not live, f"processes of the run still alive: {live}"
    # Nothing tagged with an agent run of this test process is left either.
    me = os.getpid()
    tagged = []
    for pid in proc_table():
        if pid == me:
            continue
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            any(e.startswith(RUN_TAG_ENV.encode() + b"=") for e in env)
            and alive(pid)
            and _ancestor_is(pid, me)
        ):
            tagged.append(pid)
    assert not tagged, f"tagged processes alive: {tagged}"


def _ancestor_is(pid: int, anc: int) -> bool:
    table = proc_table()
    seen = set()
    while pid in table and pid not in seen:
        seen.add(pid)
        pid = table[pid][0]
        if pid == anc:
            return True
    return False


def _run_threads() -> list[str]:
    """The run's own threads (readers, stdin feeder, exit waiter) of the agent "fake"."""
    return [t.name for t in threading.enumerate() if t.name.startswith("llmcore-fake-")]


@pytest.fixture
def pids_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "pids"
    monkeypatch.setenv("PIDS_FILE", str(path))
    return path


def test_setsid_grandchild_whose_parent_died_is_stopped(tmp_path: Path, pids_file: Path) -> None:
    # The classic daemon: a child starts a detached grandchild and exits; the program exits.
    script = _fake(
        tmp_path,
        """
        mid = detached("import subprocess, sys, os\\n"
                       "p = subprocess.Popen([sys.executable, '-c', 'import time; "
                       "time.sleep(300)'], start_new_session=True)\\n"
                       "open(os.environ['PIDS_FILE'], 'a').write(str(p.pid) + chr(10))")
        mid.wait()
        print(json.dumps({"type": "result"}), flush=True)
    """,
    )
    agent: Any = script_agent(script)
    result = agent.run(AgentTask(prompt="x", cwd=str(tmp_path)))
    assert result.success
    pids = _pids(pids_file, 3)
    _no_run_process_alive(pids)
    assert not _run_threads()


def test_detached_grandchild_with_an_empty_environment_is_stopped(
    tmp_path: Path, pids_file: Path
) -> None:
    # No tag in its environment and not in the group: found from the tree seen during the run.
    script = _fake(
        tmp_path,
        """
        detached("import time; time.sleep(300)", clear_env=True)
        time.sleep(1.5)
    """,
    )
    agent: Any = script_agent(script)
    agent.run(AgentTask(prompt="x", cwd=str(tmp_path)))
    _no_run_process_alive(_pids(pids_file, 2))


@pytest.mark.slow  # waits out the timeout and the SIGTERM grace period before the SIGKILL
def test_program_and_child_that_ignore_sigterm_are_killed_at_timeout(
    tmp_path: Path, pids_file: Path
) -> None:
    script = _fake(
        tmp_path,
        """
        import signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        detached("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                 "time.sleep(300)")
        print(json.dumps({"type": "started"}), flush=True)
        while True:
            time.sleep(0.1)
    """,
    )
    agent: Any = script_agent(script)
    with pytest.raises(llmcore.AgentTimeoutError) as info:
        agent.run(AgentTask(prompt="x", cwd=str(tmp_path), timeout=2))
    assert info.value.result is not None
    _no_run_process_alive(_pids(pids_file, 2))
    assert not _run_threads()


def test_detached_grandchild_holding_stdout_neither_crashes_nor_keeps_the_readers(
    tmp_path: Path, pids_file: Path
) -> None:
    # The grandchild inherits stdout and stderr and keeps writing to them after the program
    # exits: the readers must end with the run, and nothing may be written to the closed log.
    errors: list[BaseException] = []
    old_hook = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)  # type: ignore[assignment]
    try:
        script = _fake(
            tmp_path,
            """
            detached("import sys, time\\nwhile True:\\n    print('x', flush=True)\\n"
                     "    time.sleep(0.01)", keep_stdout=True)
            time.sleep(0.3)
            print(json.dumps({"type": "result"}), flush=True)
        """,
        )
        agent: Any = script_agent(script)
        result = agent.run(AgentTask(prompt="x", cwd=str(tmp_path)))
        assert result.success
        _no_run_process_alive(_pids(pids_file, 2))
        time.sleep(0.3)
        assert not _run_threads()
    finally:
        threading.excepthook = old_hook
    assert not errors, errors


def test_program_that_closes_stdout_and_keeps_running_is_stopped(
    tmp_path: Path, pids_file: Path
) -> None:
    script = _fake(
        tmp_path,
        """
        print(json.dumps({"type": "hello"}), flush=True)
        os.close(1)
        os.close(2)
        detached("import time; time.sleep(300)")
        while True:
            time.sleep(0.1)
    """,
    )
    agent: Any = script_agent(script)
    with pytest.raises(llmcore.AgentTimeoutError):
        agent.run(AgentTask(prompt="x", cwd=str(tmp_path), timeout=2))
    assert agent.last_run is None  # finish was never reached: stopped as a timeout
    _no_run_process_alive(_pids(pids_file, 2))
    assert not _run_threads()


def test_cancel_stops_detached_processes(tmp_path: Path, pids_file: Path) -> None:
    script = _fake(
        tmp_path,
        """
        detached("import time; time.sleep(300)")
        print(json.dumps({"type": "started"}), flush=True)
        time.sleep(300)
    """,
    )
    agent: Any = script_agent(script)
    cancel = threading.Event()
    with pytest.raises(llmcore.AgentCancelledError):
        agent.run(
            AgentTask(prompt="x", cwd=str(tmp_path)),
            on_event=lambda ev: cancel.set(),
            cancel=cancel,
        )
    _no_run_process_alive(_pids(pids_file, 2))


# -- signals to the CLI and interpreter exit --------------------------------------------------
def _cli_config(tmp_path: Path, fake: Path) -> Path:
    exe = tmp_path / "fakeagent"
    exe.write_text(f"#!{sys.executable}\n" + fake.read_text())
    exe.chmod(0o755)
    cfg = tmp_path / "llmcore.yaml"
    cfg.write_text(
        "agents:\n  fake:\n    plugin: claude-code\n"
        f"    command: {json.dumps(str(exe))}\n    timeout: 120\n"
    )
    return cfg


def ctrl_c_as_on_a_terminal() -> None:
    """In the child: SIGINT back to its default. A test run started in the background
    (`pytest &`) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt;
    a user pressing Ctrl-C at a terminal has the default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signal_to_llmcore_agent_run_stops_the_agent(
    tmp_path: Path, pids_file: Path, sig: int
) -> None:
    fake = _fake(
        tmp_path,
        """
        detached("import time; time.sleep(300)")
        time.sleep(300)
    """,
    )
    cfg = _cli_config(tmp_path, fake)
    env = {**os.environ, "LLMCORE_CONFIG": str(cfg), "PIDS_FILE": str(pids_file)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmcore",
            "agent",
            "run",
            "fake",
            "go",
            "--cwd",
            str(tmp_path),
            "--json",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_as_on_a_terminal,
    )
    try:
        pids = _pids(pids_file, 2, timeout=60)
        proc.send_signal(sig)
        stdout, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + sig
    out = json.loads(stdout)
    assert out["success"] is False and signal.Signals(sig).name in out["error"]
    _no_run_process_alive(pids)


def test_run_agent_is_stopped_at_interpreter_exit(tmp_path: Path, pids_file: Path) -> None:
    # A program that runs the agent in a daemon thread and exits while it still runs.
    fake = _fake(
        tmp_path,
        """
        detached("import time; time.sleep(300)")
        time.sleep(300)
    """,
        name="fake.py",
    )
    cfg = _cli_config(tmp_path, fake)
    prog = write_script(
        tmp_path,
        f"""
        import os, threading, time, llmcore
        client = llmcore.Client.from_config({str(cfg)!r})
        threading.Thread(target=client.run_agent, args=("fake", "go"),
                         kwargs={{"cwd": {str(tmp_path)!r}}}, daemon=True).start()
        while not os.path.exists(os.environ["PIDS_FILE"]) or \\
                len(open(os.environ["PIDS_FILE"]).read().split()) < 2:
            time.sleep(0.05)
    """,
        name="embed.py",
    )
    env = {**os.environ, "PIDS_FILE": str(pids_file)}
    out = subprocess.run(
        [sys.executable, str(prog)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    _no_run_process_alive(_pids(pids_file, 2))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signal_to_a_program_in_client_run_agent_stops_the_agent(
    tmp_path: Path, pids_file: Path, sig: int
) -> None:
    # A program embedding llmcore, blocked in Client.run_agent in its main thread.
    fake = _fake(
        tmp_path,
        """
        detached("import time; time.sleep(300)")
        time.sleep(300)
    """,
        name="fake.py",
    )
    cfg = _cli_config(tmp_path, fake)
    prog = write_script(
        tmp_path,
        f"""
        import llmcore
        client = llmcore.Client.from_config({str(cfg)!r})
        client.run_agent("fake", "go", cwd={str(tmp_path)!r})
    """,
        name="embed.py",
    )
    proc = subprocess.Popen(
        [sys.executable, str(prog)],
        env={**os.environ, "PIDS_FILE": str(pids_file)},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        pids = _pids(pids_file, 2, timeout=60)
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -sig  # it died of the signal, as without llmcore
    _no_run_process_alive(pids)
