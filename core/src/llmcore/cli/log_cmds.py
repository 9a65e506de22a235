"""``llmcore logs``: the prompt/response log (see :mod:`llmcore.promptlog`)."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from .base import State, echo_json, json_errors, pass_state
from .group import cli


@cli.command()
@click.option(
    "-n",
    "count",
    type=int,
    default=3,
    show_default=True,
    help="How many entries, newest last (0: all).",
)
@click.option("-c", "--current", "last_conv", is_flag=True, help="Only the last conversation.")
@click.option("--cid", help="Only conversation ID.")
@click.option(
    "--search",
    "-q",
    help="Only entries whose prompt, system or answer has these "
    "words (full-text search when SQLite has FTS5).",
)
@click.option("--model", "-m", help="Only answers from this model.")
@click.option("--since", help="Only entries newer than this: 30m, 24h, 7d or a date.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--path", "show_path", is_flag=True, help="Print where the log file is.")
@pass_state
def logs(
    state: State,
    count: int,
    last_conv: bool,
    cid: str | None,
    search: str | None,
    model: str | None,
    since: str | None,
    as_json: bool,
    show_path: bool,
) -> None:
    """Show logged prompts and answers (logging is on with `logs: {enabled: true}` in
    llmcore.yaml, or `llmcore chat --log`)."""
    from ..promptlog import last_conversation, log_path, query
    from ..usage import parse_since

    with json_errors(as_json):
        path = log_path(state.config)
        if show_path:
            echo_json({"path": str(path)}) if as_json else click.echo(str(path))
            return
        if last_conv and cid is None:
            cid = last_conversation(path)
            if cid is None:
                _none(as_json, path, "no conversation logged yet")
                return
        rows = query(
            path,
            limit=count or None,
            conversation_id=cid,
            search=search,
            model=model,
            since=parse_since(since) if since else None,
        )
    if as_json:
        echo_json({"ok": True, "path": str(path), "entries": rows})
        return
    if not rows:
        _none(
            False,
            path,
            "no entries match"
            if path.is_file()
            else f"nothing logged yet ({path} does not exist); turn logs on with "
            "`logs: {enabled: true}` or `llmcore chat --log`",
        )
        return
    if sys.stdout.isatty():
        _rich(rows)
    else:
        for r in rows:
            _plain(r)


def _none(as_json: bool, path: Any, text: str) -> None:
    if as_json:
        echo_json({"ok": True, "path": str(path), "entries": []})
    else:
        click.echo(text, err=True)


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _head(r: dict[str, Any]) -> str:
    tokens = (
        f" · {r['input_tokens']} in / {r['output_tokens']} out"
        if r.get("input_tokens") is not None
        else ""
    )
    conv = f" · conversation {r['conversation_id']}" if r.get("conversation_id") else ""
    return (
        f"{_when(r['time'])} · {r.get('provider') or '-'}/{r.get('model') or '-'}"
        f"{tokens}{conv} · id {r['id']}"
    )


def _plain(r: dict[str, Any]) -> None:
    click.echo(f"## {_head(r)}")
    if r.get("system"):
        click.echo(f"system: {r['system']}")
    click.echo(f"prompt: {r.get('prompt') or ''}")
    if r.get("attachments"):
        click.echo("attachments: " + ", ".join(r["attachments"]))
    if r.get("error"):
        click.echo(f"error: {r['error']}")
    else:
        click.echo(f"answer: {r.get('response') or ''}")
    click.echo("")


def _rich(rows: list[dict[str, Any]]) -> None:
    from rich.markup import escape
    from rich.panel import Panel

    from .base import console

    c = console()
    for r in rows:
        body = ""
        if r.get("system"):
            body += f"[dim]system:[/] {escape(r['system'])}\n"
        body += f"[bold]prompt:[/] {escape(r.get('prompt') or '')}\n"
        if r.get("attachments"):
            body += "[dim]attachments:[/] " + escape(", ".join(r["attachments"])) + "\n"
        if r.get("error"):
            body += f"[red]error:[/] {escape(r['error'])}"
        else:
            body += f"[bold]answer:[/] {escape(r.get('response') or '')}"
        c.print(Panel(body, title=escape(_head(r)), title_align="left"))
