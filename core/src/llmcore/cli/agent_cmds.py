"""``llmcore agents`` (what is configured and found) and ``llmcore agent run``."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import click

from .base import State, echo_json, pass_state, table
from .group import cli

if TYPE_CHECKING:
    from ..types import AgentResult

from ..agents import MODE_ALIASES, MODES

MODE_CHOICES = (*MODES, *MODE_ALIASES)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_state
def agents(state: State, as_json: bool) -> None:
    """List configured agents: found or not, version, program path."""
    from concurrent.futures import ThreadPoolExecutor

    rt = state.runtime
    found = list(rt.agents.values())

    def row(agent: Any) -> dict[str, Any]:
        from ..config import normalize_mode

        path = agent.executable() if agent.available() else None
        cfg = agent.config
        return {
            "name": agent.name,
            "plugin": agent.type_name,
            "found": path is not None,
            "version": agent.version() if path else None,
            "path": path,
            "mode": normalize_mode(cfg.mode),
            "model": cfg.model,
            "base_url": cfg.base_url,
            "api_key_env": cfg.api_key_env,
            "isolation": cfg.isolation,
            "timeout": cfg.timeout,
            "logs_keep_days": cfg.logs_keep_days,
            "logs_max_mb": cfg.logs_max_mb,
            # every plugin option, defaults filled in: what the runs will use
            "options": agent.effective_options(),
        }

    # ``--version`` of a Node program takes ~0.5-2 s: ask them all at once.
    with ThreadPoolExecutor(max_workers=8) as pool:
        rows = list(pool.map(row, found))
    if as_json:
        echo_json(rows)
        return
    table(
        "agents",
        ["name", "plugin", "found", "version", "path", "mode", "model"],
        [
            (
                r["name"],
                r["plugin"],
                "[green]yes[/]" if r["found"] else "[red]no[/]",
                r["version"] or "",
                r["path"] or "",
                r["mode"],
                r["model"] or "",
            )
            for r in rows
        ],
    )


@cli.group()
def agent() -> None:
    """Run a coding agent."""


@agent.command("run")
@click.argument("name")
@click.argument("prompt", required=False)
@click.option(
    "--prompt-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Read the task from this file (UTF-8) instead of PROMPT.",
)
@click.option(
    "--cwd",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory the agent works in (default: the current one).",
)
@click.option("--timeout", type=float, default=None, help="Seconds before the run is stopped.")
@click.option(
    "--mode",
    type=click.Choice(MODE_CHOICES, case_sensitive=False),
    default=None,
    help="read_only, suggest, auto_edit or full_auto; also auto-edit, full-auto "
    "(default: from config).",
)
@click.option("--model", default=None, help="Model the agent should use.")
@click.option("--resume", default=None, help="Session id of an earlier run to continue.")
@click.option("--json", "as_json", is_flag=True, help="Print the AgentResult as JSON.")
@pass_state
def agent_run(
    state: State,
    name: str,
    prompt: str | None,
    prompt_file: str | None,
    cwd: str | None,
    timeout: float | None,
    mode: str | None,
    model: str | None,
    resume: str | None,
    as_json: bool,
) -> None:
    """Run agent NAME on PROMPT; exit 0 only when the agent succeeded.

    A prompt starting with "-" needs "--" before it: llmcore agent run aider -- "-v flag".
    """
    import signal

    from ..errors import AgentError, LLMCoreError

    client = state.client
    progress = _Progress(name, enabled=sys.stderr.isatty() and not as_json)
    got: list[int] = []

    def interrupted(signum: int, frame: Any) -> None:
        got.append(signum)
        raise KeyboardInterrupt  # the runner stops every process of the run on the way out

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)
    try:
        with progress:
            result = client.run_agent(
                name,
                prompt,
                cwd=cwd,
                mode=mode,
                model=model,
                resume=resume,
                timeout=timeout,
                on_event=progress.event,
                prompt_file=prompt_file,
            )
    except AgentError as exc:
        if not as_json or exc.result is None:
            raise
        data = exc.result.to_dict()
        data["error"] = str(exc)
        data["error_type"] = type(exc).__name__
        echo_json(data)
        sys.exit(exc.exit_code)
    except LLMCoreError as exc:
        if not as_json:
            raise
        echo_json(
            {"agent": name, "success": False, "error": str(exc), "error_type": type(exc).__name__}
        )
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        signum = got[0] if got else int(signal.SIGINT)
        what = f"interrupted by {signal.Signals(signum).name}; the agent was stopped"
        if as_json:
            echo_json(
                {
                    "agent": name,
                    "success": False,
                    "error": what,
                    "error_type": "AgentCancelledError",
                }
            )
        else:
            click.echo(f"{name}: {what}", err=True)
        sys.exit(128 + signum)
    if as_json:
        echo_json(result.to_dict())
    else:
        _print_result(result)
    sys.exit(0 if result.success else 1)


def _print_result(result: AgentResult) -> None:
    if result.output:
        click.echo(result.output)
    err = sys.stderr
    status = "ok" if result.success else "FAILED"
    bits = [f"{result.agent}: {status} in {result.duration_s:.1f}s"]
    if result.files_modified:
        bits.append(
            f"{len(result.files_modified)} file(s) changed: "
            + ", ".join(result.files_modified[:10])
        )
    if result.usage:
        bits.append(f"tokens {result.usage.input_tokens} in / {result.usage.output_tokens} out")
    if result.cost_usd is not None:
        bits.append(f"${result.cost_usd:.4f}")
    if result.session_id:
        bits.append(f"session {result.session_id}")
    click.echo("; ".join(bits), file=err)
    if result.error:
        click.echo(f"error: {result.error}", file=err)
    if result.log_path and not result.success:
        click.echo(f"full output: {result.log_path}", file=err)


class _Progress:
    """A rich spinner on stderr: current step and elapsed time, fed by the agent's events."""

    def __init__(self, name: str, enabled: bool) -> None:
        self.name = name
        self.enabled = enabled
        self.step = "starting"
        self.count = 0
        self.start = time.monotonic()
        self._status: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from .base import console

            self._status = console(stderr=True).status(self._text())
            self._status.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.__exit__(*exc)

    def _text(self) -> str:
        from rich.markup import escape

        elapsed = time.monotonic() - self.start
        return (
            f"[bold]{escape(self.name)}[/] {escape(self.step)} "
            f"[dim]({self.count} events, {elapsed:.0f}s)[/]"
        )

    def event(self, ev: dict[str, Any]) -> None:
        self.count += 1
        self.step = describe_event(ev)
        if self._status is not None:
            self._status.update(self._text())


def describe_event(ev: dict[str, Any]) -> str:
    """One short line for an agent event of any of the known shapes."""
    kind = str(ev.get("type") or ev.get("event") or "event")
    inner = ev.get("event")
    if kind == "stream_event" and isinstance(inner, dict):
        kind = str(inner.get("type") or kind)
    raw_part, raw_item = ev.get("part"), ev.get("item")
    part: dict[str, Any] = raw_part if isinstance(raw_part, dict) else {}
    item: dict[str, Any] = raw_item if isinstance(raw_item, dict) else {}
    tool = (
        part.get("tool")
        or item.get("command")
        or item.get("type")
        or ev.get("file")
        or ev.get("tool_name")
        or ""
    )
    if not tool and isinstance(ev.get("message"), dict):
        for c in ev["message"].get("content") or []:
            if isinstance(c, dict) and c.get("type") == "tool_use":
                tool = c.get("name", "")
    text = f"{kind}: {tool}" if tool else kind
    return text[:80]


# -- isolated runs: merge, clean, list ---------------------------------------------------
@agent.command("merge")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print what was merged as JSON.")
def agent_merge(run_id: str, as_json: bool) -> None:
    """Bring isolated run RUN_ID's branch into the checkout it came from.

    Fast-forward when the checkout has not moved, a merge commit otherwise; a conflict is
    aborted and reported, the checkout left as it was and the branch kept.
    """
    from ..agent_worktrees import merge_run
    from ..errors import LLMCoreError

    try:
        out = merge_run(run_id)
    except LLMCoreError as exc:
        if not as_json:
            raise
        echo_json(
            {"run_id": run_id, "merged": False, "error": str(exc), "error_type": type(exc).__name__}
        )
        sys.exit(exc.exit_code)
    if as_json:
        echo_json({"merged": True, **out.to_dict()})
        return
    what = {
        "nothing": "already merged",
        "fast-forward": "fast-forwarded",
        "merge": "merged with a merge commit",
    }[out.how]
    click.echo(
        f"{out.branch}: {what} into {out.source} ({len(out.files)} file(s): "
        f"{', '.join(out.files[:10])}) at {out.commit[:12]}"
    )


@agent.command("clean")
@click.option(
    "--keep",
    type=click.Choice(["failed", "all", "none"]),
    default="failed",
    show_default=True,
    help="Which finished runs keep their worktree and branch.",
)
@click.option(
    "--cwd",
    type=click.Path(file_okay=False),
    default=None,
    help="Only runs made from this checkout.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON.")
def agent_clean(keep: str, cwd: str | None, as_json: bool) -> None:
    """Remove finished isolated runs' worktrees and branches (runs still going are left)."""
    from ..agent_worktrees import clean_runs, git_toplevel

    source = (git_toplevel(cwd) or cwd) if cwd else None
    removed = clean_runs(keep, source=source)
    if as_json:
        echo_json({"removed": removed})
        return
    for r in removed:
        tip = f" (its last commit {r['commit'][:12]})" if r["commit"] else ""
        click.echo(f"removed {r['branch']}{tip} and {r['worktree']}")
    click.echo(f"{len(removed)} run(s) removed", err=True)


@agent.command("runs")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def agent_runs(as_json: bool) -> None:
    """List isolated runs that still have a worktree or branch."""
    from ..agent_worktrees import list_runs

    rows = [
        {
            "run_id": r.run_id,
            "agent": r.agent,
            "finished": r.finished,
            "success": r.success,
            "branch": r.branch,
            "worktree": r.root,
            "source": r.source,
            "session_id": r.session_id,
        }
        for r in list_runs()
    ]
    if as_json:
        echo_json(rows)
        return
    table(
        "isolated runs",
        ["run", "agent", "state", "branch", "source"],
        [
            (
                r["run_id"],
                r["agent"],
                ("ok" if r["success"] else "failed") if r["finished"] else "running",
                r["branch"],
                r["source"],
            )
            for r in rows
        ],
    )


# -- batches -------------------------------------------------------------------------------
@agent.command("batch")
@click.argument("tasks_file", type=click.Path(dir_okay=False, exists=True))
@click.option(
    "--parallel",
    type=click.IntRange(1, 64),
    default=None,
    help="Tasks run at a time (default: the file's parallel:, else 4).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON line per finished task, then one with the summary.",
)
@pass_state
def agent_batch(state: State, tasks_file: str, parallel: int | None, as_json: bool) -> None:
    """Run every task of TASKS_FILE (YAML); exit 0 only if every task succeeded.

    Ctrl-C or SIGTERM cancels them all: every process stopped, no worktree left behind for
    a task that changed nothing.
    """
    import json
    import signal
    import threading

    from ..agent_batch import Batch, load_tasks, summary

    tasks, settings = load_tasks(tasks_file)
    n = parallel or int(settings.get("parallel") or 4)
    out_lock = threading.Lock()

    def finished(o: Any) -> None:
        if as_json:
            with out_lock:
                click.echo(json.dumps(o.to_dict(), default=str))

    live = _BatchTable(enabled=sys.stderr.isatty() and not as_json)
    batch = Batch(state.client, tasks, parallel=n, on_update=live.update, on_finish=finished)
    live.outcomes = batch.outcomes

    got: list[int] = []

    def to_cancel(signum: int, frame: Any) -> None:
        got.append(signum)
        raise KeyboardInterrupt  # the batch cancels every task, then we exit 128+N

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, to_cancel)
    try:
        with live:
            batch.run()
    except KeyboardInterrupt:
        live.stop()
        if as_json:
            click.echo(json.dumps({"summary": summary(batch.outcomes), "cancelled": True}))
        else:
            click.echo("batch cancelled: every task stopped", err=True)
        sys.exit(128 + (got[0] if got else signal.SIGINT))
    result = summary(batch.outcomes)
    if as_json:
        click.echo(json.dumps({"summary": result}))
    else:
        for o in batch.outcomes:
            if not live.enabled:
                click.echo(_outcome_line(o))
        click.echo(
            f"{result['ok']}/{result['tasks']} ok, {result['failed']} failed, "
            f"{result['cancelled']} cancelled; {result['files_changed']} file(s) "
            f"changed, {result['tokens']} tokens, ${result['cost_usd']:.4f}",
            err=True,
        )
    sys.exit(0 if result["success"] else 1)


def _outcome_line(o: Any) -> str:
    r = o.result
    bits = [f"{o.name}", o.agent or o.task.agents()[0], o.state, f"{o.elapsed():.1f}s"]
    if r is not None:
        bits.append(f"{len(r.files_modified)} file(s)")
        if r.branch:
            bits.append(r.branch)
        if r.run_id:
            bits.append(f"run {r.run_id}")
    if o.error:
        bits.append(f"error: {o.error.splitlines()[0][:200]}")
    return "\t".join(bits)


class _BatchTable:
    """A live rich table on stderr: one row per task (state, agent, elapsed, files, tokens,
    cost), redrawn four times a second; plain lines at the end when not on a terminal."""

    COLORS = {
        "queued": "dim",
        "running": "yellow",
        "ok": "green",
        "failed": "red",
        "cancelled": "magenta",
    }

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.outcomes: list[Any] = []
        self._live: Any = None

    def __enter__(self) -> _BatchTable:
        if self.enabled:
            from rich.live import Live

            from .base import console

            self._live = Live(
                console=console(stderr=True),
                get_renderable=self.render,
                refresh_per_second=4,
                transient=False,
            )
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._live is not None:
            live, self._live = self._live, None
            live.__exit__(None, None, None)

    def update(self, o: Any) -> None:
        pass  # the table is redrawn from the outcomes on a timer

    def render(self) -> Any:
        from rich.markup import escape
        from rich.table import Table

        t = Table(title="agent batch", title_justify="left")
        for c in ("task", "agent", "state", "elapsed", "files", "tokens", "cost"):
            t.add_column(c)
        for o in self.outcomes:
            r = o.result
            tokens = r.usage.total_tokens if r is not None and r.usage else None
            t.add_row(
                escape(o.name),
                escape(o.agent or o.task.agents()[0]),
                f"[{self.COLORS.get(o.state, '')}]{o.state}[/]",
                f"{o.elapsed():.0f}s" if o.started else "",
                str(len(r.files_modified)) if r is not None else "",
                str(tokens) if tokens else "",
                f"${r.cost_usd:.4f}" if r is not None and r.cost_usd else "",
            )
        return t
