"""The base class of agent plugins and the subprocess runner they all use."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from typing import Any, ClassVar

import attrs

from .config import AgentConfig, structure_options
from .errors import AgentNotFoundError
from .types import AgentResult, AgentTask

EventCallback = Callable[[dict[str, Any]], None]


@attrs.define
class Invocation:
    """What to start: argv (never a shell string), extra environment, working directory."""

    argv: list[str]
    env: dict[str, str] = attrs.field(factory=dict)
    cwd: str = "."


@attrs.define
class RunOutput:
    """What the runner saw of one run, handed to :meth:`Agent.finish`."""

    exit_code: int | None
    events: list[dict[str, Any]]
    stdout_tail: str
    stderr_tail: str
    duration_s: float
    files_modified: list[str]
    timed_out: bool = False


class Agent:
    """One configured coding agent. Subclass it, set ``type_name`` and ``program``."""

    type_name: ClassVar[str] = ""
    program: ClassVar[str] = ""
    kind: ClassVar[str] = "cli"
    Options: ClassVar[type | None] = None

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.name = config.name or self.type_name
        self.options: Any = (
            structure_options(self.Options, config.options) if self.Options else None
        )
        self._version: str | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    def executable(self) -> str | None:
        """The program's path, from ``command:`` in config or PATH; ``None`` when missing."""
        cmd = self.config.command or self.program
        if os.sep in cmd:
            return cmd if os.access(cmd, os.X_OK) else None
        return shutil.which(cmd)

    def available(self) -> bool:
        try:
            return self.executable() is not None
        except Exception:
            return False

    def version(self) -> str | None:
        if self._version is None:
            exe = self.executable()
            if not exe:
                return None
            try:
                out = subprocess.run(
                    [exe, "--version"], capture_output=True, text=True, timeout=15, check=False
                )
                self._version = (out.stdout or out.stderr).strip().splitlines()[0:1][0] or ""
            except (OSError, subprocess.SubprocessError, IndexError):
                self._version = ""
        return self._version or None

    def build(self, task: AgentTask) -> Invocation:
        """Return the argv and environment that run ``task`` non-interactively."""
        raise NotImplementedError

    def parse_line(self, line: str) -> dict[str, Any] | None:
        """Turn one line of output into an event, or ``None`` when it is not one."""
        return None

    def finish(self, task: AgentTask, run: RunOutput) -> AgentResult:
        """Judge the run: success, final text, usage, session id, error."""
        return AgentResult(
            agent=self.name,
            success=run.exit_code == 0 and not run.timed_out,
            output=run.stdout_tail.strip(),
            files_modified=run.files_modified,
            duration_s=run.duration_s,
            exit_code=run.exit_code,
            events=len(run.events),
        )

    def run(self, task: AgentTask, on_event: EventCallback | None = None) -> AgentResult:
        from .runner import run_agent_process

        return run_agent_process(self, task, on_event=on_event)


def missing_program(agent: Agent) -> AgentNotFoundError:
    return AgentNotFoundError(
        f"{agent.name}: program {agent.config.command or agent.program!r} was not found",
        agent=agent.name,
        hint=f"install it, or set agents.{agent.name}.command to its path",
    )

