"""Many agent tasks at once: ``Client.run_agents`` and ``llmcore agent batch``.

Each task names an agent (or a chain of agents, tried in order), a prompt or a prompt file,
a working directory and options. Up to ``parallel`` tasks run at a time, each in threads of
its own; with ``isolation: worktree`` each gets its own branch and worktree. A task whose
agent is rate limited cools that agent down in the router's cooldown store
(``routing.cooldown.rate_limit_seconds``, or the wait the agent reported): later tasks skip
it (to the next agent of their chain, or fail at once). Cancelling (``cancel.set()``, Ctrl-C,
SIGTERM) stops every running task, with every process it started, and starts no more.

Memory stays bounded: what is kept per finished task is its result with the output and the
diff cut to :data:`KEEP_TEXT` bytes (the log and the branch hold all of it).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .errors import (
    AgentCancelledError,
    AgentError,
    AgentRateLimitError,
    BadRequestError,
    ConfigError,
    LLMCoreError,
)

if TYPE_CHECKING:
    from .client import _Base
    from .types import AgentResult

#: Bytes of output and of diff kept per finished task of a batch.
KEEP_TEXT = 64 * 1024
STATES = ("queued", "running", "ok", "failed", "cancelled")


@attrs.define
class BatchTask:
    """One task of a batch. ``agent`` is a name or a list of names (a chain)."""

    agent: str | list[str]
    prompt: str | None = None
    prompt_file: str | None = None
    cwd: str | None = None
    mode: str | None = None
    model: str | None = None
    timeout: float | None = None
    resume: str | None = None
    args: list[str] = attrs.field(factory=list)
    #: ``worktree`` or ``none``: overrides the agent's configured isolation.
    isolation: str | None = None
    #: A name for the task in the table and the JSON lines (default: its number).
    id: str | None = None

    def agents(self) -> list[str]:
        return [self.agent] if isinstance(self.agent, str) else list(self.agent)


@attrs.define
class TaskOutcome:
    """Where one task stands; finished ones carry ``result`` (or ``error``)."""

    index: int
    task: BatchTask
    state: str = "queued"
    agent: str | None = None
    result: AgentResult | None = None
    error: str | None = None
    error_type: str | None = None
    started: float | None = None
    finished: float | None = None
    events: int = 0

    @property
    def name(self) -> str:
        return self.task.id or str(self.index + 1)

    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.monotonic()) - self.started

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "task": self.name,
            "index": self.index,
            "state": self.state,
            "agent": self.agent or self.task.agents()[0],
            "elapsed_s": round(self.elapsed(), 3),
        }
        if self.result is not None:
            data["result"] = self.result.to_dict()
        if self.error:
            data["error"] = self.error
            data["error_type"] = self.error_type
        return data


def load_tasks(path: str | os.PathLike[str]) -> tuple[list[BatchTask], dict[str, Any]]:
    """Read a tasks file (YAML): ``tasks:`` (a list) and optional ``parallel:`` and
    ``defaults:`` (keys every task gets unless it sets them). Relative ``cwd`` and
    ``prompt_file`` are taken from the file's directory. Returns (tasks, settings)."""
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read tasks file {p}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"tasks file {p} is not valid YAML: {exc}") from None
    if isinstance(data, list):
        data = {"tasks": data}
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), list):
        raise ConfigError(
            f"tasks file {p}: expected a list of tasks, or a mapping with 'tasks:'",
            hint="see docs/agents.md#batches",
        )
    defaults = data.get("defaults") or {}
    settings = {k: v for k, v in data.items() if k not in ("tasks", "defaults")}
    tasks = [
        as_task(
            {**defaults, **(raw if isinstance(raw, dict) else {"_": raw})},
            base=p.parent,
            where=f"{p}: tasks[{i}]",
        )
        for i, raw in enumerate(data["tasks"])
    ]
    return tasks, settings


def as_task(
    raw: BatchTask | Mapping[str, Any], *, base: Path | None = None, where: str = "task"
) -> BatchTask:
    """A :class:`BatchTask` from a mapping, with a clear error for a wrong key or value."""
    if isinstance(raw, BatchTask):
        return raw
    known = {a.name for a in attrs.fields(BatchTask)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}",
            hint="a task takes " + ", ".join(sorted(known)),
        )
    agent = raw.get("agent")
    if not agent or not (
        isinstance(agent, str)
        or (isinstance(agent, list) and all(isinstance(a, str) for a in agent))
    ):
        raise ConfigError(f"{where}: 'agent' must name an agent or a list of agents")
    data = dict(raw)
    if base is not None:
        for key in ("cwd", "prompt_file"):
            if data.get(key):
                data[key] = str(base / os.path.expanduser(str(data[key])))
    if data.get("args") is not None and not isinstance(data["args"], list):
        raise ConfigError(f"{where}: 'args' must be a list")
    return BatchTask(**data)


class Batch:
    """Runs tasks on a client; ``outcomes`` is the live state (read it from any thread)."""

    def __init__(
        self,
        client: _Base,
        tasks: Iterable[BatchTask | Mapping[str, Any]],
        *,
        parallel: int = 4,
        on_update: Callable[[TaskOutcome], None] | None = None,
        on_finish: Callable[[TaskOutcome], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        if parallel < 1:
            raise BadRequestError(f"parallel must be at least 1, not {parallel}")
        self.client = client
        self.outcomes = [
            TaskOutcome(i, as_task(t, where=f"tasks[{i}]")) for i, t in enumerate(tasks)
        ]
        for o in self.outcomes:  # unknown agents fail now, before anything runs
            for name in o.task.agents():
                client.runtime.agent(name)
        self.parallel = parallel
        self.on_update = on_update
        self.on_finish = on_finish
        self.cancel = cancel or threading.Event()
        self.lock = threading.Lock()

    # -- running ---------------------------------------------------------------------
    def run(self) -> list[TaskOutcome]:
        """Run every task; returns the outcomes in task order. Ctrl-C cancels them all."""
        with ThreadPoolExecutor(
            max_workers=self.parallel, thread_name_prefix="llmcore-batch"
        ) as pool:
            futures = [pool.submit(self._run_one, o) for o in self.outcomes]
            try:
                pending = set(futures)
                while pending:  # short waits: Ctrl-C reaches the main thread at once
                    _done, pending = wait(pending, timeout=0.2)
            except BaseException:
                self.cancel.set()
                for f in futures:
                    f.cancel()
                for f in futures:
                    if not f.cancelled():
                        f.exception()  # every started task has stopped its processes
                for o in self.outcomes:
                    if o.state == "queued":
                        self._finish(
                            o,
                            "cancelled",
                            error="batch cancelled",
                            error_type="AgentCancelledError",
                        )
                raise
        return self.outcomes

    def _run_one(self, o: TaskOutcome) -> None:
        if self.cancel.is_set():
            self._finish(o, "cancelled", error="batch cancelled", error_type="AgentCancelledError")
            return
        o.state, o.started = "running", time.monotonic()
        self._update(o)
        chain = o.task.agents()
        last: LLMCoreError | None = None
        for name in chain:
            cooling = self._cooling(name)
            if cooling:
                last = AgentRateLimitError(
                    f"{name}: cooling down after a rate limit ({cooling})",
                    agent=name,
                    hint="it is skipped for the rest of the batch; add another agent to "
                    "the task's chain (agent: [a, b])",
                )
                continue
            o.agent = name
            self._update(o)
            try:
                result = self._run_agent(name, o)
            except AgentRateLimitError as exc:
                self._cool(name, exc)
                last = exc
                o.result = _slim(exc.result) if exc.result is not None else o.result
                continue
            except AgentCancelledError as exc:
                o.result = _slim(exc.result) if exc.result is not None else None
                self._finish(o, "cancelled", error=exc.message, error_type=type(exc).__name__)
                return
            except LLMCoreError as exc:
                o.result = (
                    _slim(exc.result)
                    if isinstance(exc, AgentError) and exc.result is not None
                    else None
                )
                self._finish(o, "failed", error=str(exc), error_type=type(exc).__name__)
                return
            except Exception as exc:  # a plugin bug: that task fails, the batch goes on
                self._finish(
                    o, "failed", error=f"{type(exc).__name__}: {exc}", error_type=type(exc).__name__
                )
                return
            o.result = _slim(result)
            self._finish(
                o,
                "ok" if result.success else "failed",
                error=None if result.success else result.error,
                error_type=None if result.success else "AgentFailedError",
            )
            return
        assert last is not None
        self._finish(o, "failed", error=str(last), error_type=type(last).__name__)

    def _run_agent(self, name: str, o: TaskOutcome) -> AgentResult:
        from .runner import resolve_prompt

        t = o.task
        client = self.client
        agent = client.runtime.agent(name)
        prompt = resolve_prompt(t.prompt, t.prompt_file)
        task = client._task(agent, prompt, t.cwd, t.mode, t.model, t.resume, t.timeout, t.args)
        task.isolation = t.isolation

        def on_event(ev: dict[str, Any]) -> None:
            o.events += 1
            self._update(o)

        return client._agent_run(agent, task, on_event, self.cancel)

    # -- cooldowns (the router's store) ---------------------------------------------------
    def _cooling(self, name: str) -> str | None:
        try:
            found = self.client.router.cooldowns().get(name)
        except Exception:
            return None
        if found is None or found[0] <= time.time():
            return None
        return f"{found[1]} until {time.strftime('%H:%M:%S', time.localtime(found[0]))}"

    def _cool(self, name: str, exc: AgentRateLimitError) -> None:
        from .state import Cooldown

        seconds = (
            getattr(exc, "retry_after", None)
            or self.client.runtime.config.routing.cooldown.rate_limit_seconds
        )
        try:
            self.client.router.store.put(
                Cooldown(name, time.time() + float(seconds), "rate_limited")
            )
        except Exception:
            pass

    # -- state -----------------------------------------------------------------------------
    def _update(self, o: TaskOutcome) -> None:
        if self.on_update is not None:
            try:
                self.on_update(o)
            except Exception:
                self.on_update = None  # a broken display must not stop the batch

    def _finish(
        self, o: TaskOutcome, state: str, *, error: str | None = None, error_type: str | None = None
    ) -> None:
        with self.lock:
            o.state, o.error, o.error_type = state, error, error_type
            o.finished = time.monotonic()
            if o.started is None:
                o.started = o.finished
        self._update(o)
        if self.on_finish is not None:
            self.on_finish(o)


def _slim(result: AgentResult | None) -> AgentResult | None:
    """The result with output and diff cut to :data:`KEEP_TEXT` bytes."""
    if result is None:
        return None
    if result.output and len(result.output) > KEEP_TEXT:
        result.output = result.output[-KEEP_TEXT:]
    if result.diff and len(result.diff) > KEEP_TEXT:
        result.diff = (
            result.diff[:KEEP_TEXT]
            + f"\n[llmcore: diff cut; `git diff` on {result.branch} has all of it]\n"
        )
    return result


def summary(outcomes: Sequence[TaskOutcome]) -> dict[str, Any]:
    """Counts, tokens, cost and time of a batch."""
    counts = {s: sum(1 for o in outcomes if o.state == s) for s in STATES}
    tokens = sum(
        (o.result.usage.total_tokens if o.result and o.result.usage else 0) for o in outcomes
    )
    cost = sum((o.result.cost_usd or 0.0) for o in outcomes if o.result)
    return {
        "tasks": len(outcomes),
        **counts,
        "tokens": tokens,
        "cost_usd": round(cost, 6),
        "files_changed": sum(len(o.result.files_modified) for o in outcomes if o.result),
        "success": bool(outcomes) and counts["ok"] == len(outcomes),
    }
