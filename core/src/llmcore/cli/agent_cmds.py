"""``llmcore agents`` (what is configured and found) and ``llmcore agent run``."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import click

from . import cli
from .base import State, echo_json, pass_state, table

if TYPE_CHECKING:
    from ..types import AgentResult

MODES = ("read_only", "suggest", "auto_edit", "full_auto")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_state
def agents(state: State, as_json: bool) -> None:
    """List configured agents: found or not, version, program path."""
    from concurrent.futures import ThreadPoolExecutor

    rt = state.runtime
    found = list(rt.agents.values())

    def row(agent: Any) -> dict[str, Any]:
        path = agent.executable() if agent.available() else None
        return {"name": agent.name, "plugin": agent.type_name, "found": path is not None,
                "version": agent.version() if path else None, "path": path,
                "mode": agent.config.mode, "model": agent.config.model,
                "base_url": agent.config.base_url}

    # ``--version`` of a Node program takes ~0.5-2 s: ask them all at once.
    with ThreadPoolExecutor(max_workers=8) as pool:
        rows = list(pool.map(row, found))
    if as_json:
        echo_json(rows)
        return
    table("agents", ["name", "plugin", "found", "version", "path", "mode", "model"], [
        (r["name"], r["plugin"], "[green]yes[/]" if r["found"] else "[red]no[/]",
         r["version"] or "", r["path"] or "", r["mode"], r["model"] or "") for r in rows
    ])


@cli.group()
def agent() -> None:
    """Run a coding agent."""


@agent.command("run")
@click.argument("name")
@click.argument("prompt", required=False)
@click.option("--prompt-file", type=click.Path(dir_okay=False), default=None,
              help="Read the task from this file (UTF-8) instead of PROMPT.")
@click.option("--cwd", type=click.Path(file_okay=False), default=None,
              help="Directory the agent works in (default: the current one).")
@click.option("--timeout", type=float, default=None, help="Seconds before the run is stopped.")
@click.option("--mode", type=click.Choice(MODES), default=None,
              help="read_only, suggest, auto_edit or full_auto (default: from config).")
@click.option("--model", default=None, help="Model the agent should use.")
@click.option("--resume", default=None, help="Session id of an earlier run to continue.")
@click.option("--json", "as_json", is_flag=True, help="Print the AgentResult as JSON.")
@pass_state
def agent_run(state: State, name: str, prompt: str | None, prompt_file: str | None,
              cwd: str | None, timeout: float | None,
              mode: str | None, model: str | None, resume: str | None, as_json: bool) -> None:
    """Run agent NAME on PROMPT; exit 0 only when the agent succeeded.

    A prompt starting with "-" needs "--" before it: llmcore agent run aider -- "-v flag".
    """
    from ..errors import AgentError, LLMCoreError

    client = state.client
    progress = _Progress(name, enabled=sys.stderr.isatty() and not as_json)
    try:
        with progress:
            result = client.run_agent(name, prompt, cwd=cwd, mode=mode, model=model,
                                      resume=resume, timeout=timeout, on_event=progress.event,
                                      prompt_file=prompt_file)
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
        echo_json({"agent": name, "success": False, "error": str(exc),
                   "error_type": type(exc).__name__})
        sys.exit(exc.exit_code)
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
        bits.append(f"{len(result.files_modified)} file(s) changed: "
                    + ", ".join(result.files_modified[:10]))
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
        return (f"[bold]{escape(self.name)}[/] {escape(self.step)} "
                f"[dim]({self.count} events, {elapsed:.0f}s)[/]")

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
    tool = (part.get("tool") or item.get("command") or item.get("type") or ev.get("file")
            or ev.get("tool_name") or "")
    if not tool and isinstance(ev.get("message"), dict):
        for c in ev["message"].get("content") or []:
            if isinstance(c, dict) and c.get("type") == "tool_use":
                tool = c.get("name", "")
    text = f"{kind}: {tool}" if tool else kind
    return text[:80]
