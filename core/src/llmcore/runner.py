"""Run an agent's program: own process group, streamed lines, timeout that kills the group."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import AgentError, AgentTimeoutError

if TYPE_CHECKING:
    from .agents import Agent, EventCallback
    from .types import AgentResult, AgentTask

TAIL_LINES = 200
GRACE_S = 3.0


def run_agent_process(
    agent: Agent, task: AgentTask, on_event: EventCallback | None = None
) -> AgentResult:
    from .agents import RunOutput, missing_program

    cwd = Path(task.cwd)
    if not cwd.is_dir():
        raise AgentError(
            f"working directory does not exist: {cwd}", agent=agent.name,
            hint="pass an existing directory with --cwd",
        )
    if not agent.available():
        raise missing_program(agent)
    inv = agent.build(task)
    env = dict(os.environ)
    env.update(inv.env)
    start = time.monotonic()
    proc = subprocess.Popen(
        inv.argv,
        cwd=inv.cwd or str(cwd),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    events: list[dict[str, Any]] = []
    out_tail: deque[str] = deque(maxlen=TAIL_LINES)
    err_tail: deque[str] = deque(maxlen=TAIL_LINES)

    def pump_err() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            err_tail.append(raw.decode("utf-8", "replace"))

    t = threading.Thread(target=pump_err, daemon=True)
    t.start()
    timeout = task.timeout or agent.config.timeout
    timer = threading.Timer(timeout, _kill_group, args=(proc,))
    timer.start()
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace")
            out_tail.append(line)
            event = agent.parse_line(line.strip())
            if event is None:
                event = _json_line(line)
            if event is not None:
                events.append(event)
                if on_event:
                    on_event(event)
        proc.wait()
    finally:
        timer.cancel()
        _kill_group(proc)
        t.join(timeout=1)
    duration = time.monotonic() - start
    timed_out = duration >= timeout
    if timed_out:
        raise AgentTimeoutError(
            f"{agent.name} ran past its timeout of {timeout:g}s and was stopped",
            agent=agent.name, hint="raise --timeout or agents.NAME.timeout",
        )
    run = RunOutput(
        exit_code=proc.returncode, events=events, stdout_tail="".join(out_tail),
        stderr_tail="".join(err_tail), duration_s=duration, files_modified=[],
    )
    return agent.finish(task, run)


def _json_line(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    try:
        proc.wait(timeout=GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
