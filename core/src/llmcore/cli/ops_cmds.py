"""Operations commands: ``usage`` (what it cost, how fast) and ``doctor`` (what works)."""

from __future__ import annotations

import sys
from typing import Any

import click

from .base import State, echo_json, handle_errors, pass_state
from .group import cli


def _money(v: float) -> str:
    return f"${v:.4f}" if v < 100 else f"${v:,.2f}"


def _ms(v: float | None) -> str:
    return "-" if v is None else (f"{v * 1000:.0f} ms" if v < 10 else f"{v:.1f} s")


@cli.command()
@click.option(
    "--since",
    default="24h",
    show_default=True,
    help="How far back: a duration (30m, 24h, 7d, 2w) or a date (2025-06-01).",
)
@click.option(
    "--by",
    "by",
    type=click.Choice(["provider", "model", "agent", "day", "key"]),
    default="provider",
    show_default=True,
    help="One row per …",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--prometheus",
    is_flag=True,
    help="Print the metrics in the Prometheus text format (from the SQLite data).",
)
@pass_state
def usage(state: State, since: str, by: str, as_json: bool, prometheus: bool) -> None:
    """Requests, errors, tokens, cost and latency, from the SQLite metrics sink."""
    with handle_errors(state.debug):
        from ..sinks.sqlite import read_events
        from ..usage import parse_since, prometheus_text, sparkline, sqlite_path, summarize

        start = parse_since(since)
        path = sqlite_path(state.config)
        events = read_events(path, since=start)
        if prometheus:
            click.echo(prometheus_text(events), nl=False)
            return
        rows = summarize(events, by=by, since=start)
        if as_json:
            echo_json(
                {
                    "since": start,
                    "by": by,
                    "database": str(path),
                    "rows": [{k: v for k, v in r.items() if k != "series"} for r in rows],
                }
            )
            return
        from rich.table import Table

        from .base import console

        if not rows:
            note = "" if path.is_file() else f" ({path} does not exist yet)"
            click.echo(f"no requests recorded since {since}{note}", err=True)
            return
        t = Table(title=f"usage by {by}, last {since}", title_justify="left")
        for col in (
            by,
            "requests",
            "errors",
            "tokens in/out",
            "cost",
            "p50",
            "p95",
            "TTFT p50",
            "activity",
        ):
            t.add_column(col, justify="left" if col in (by, "activity") else "right")
        for r in rows:
            errors = str(r["errors"])
            if r["failed_attempts"]:
                errors += f" (+{r['failed_attempts']} failed tries)"
            cost = _money(r["cost_usd"])
            if r["unpriced"]:
                cost += f" +{r['unpriced']} unpriced"
            requests = str(r["requests"])
            if r.get("cache_hits"):
                requests += f" ({r['cache_hits']} cached)"
            t.add_row(
                str(r[by]),
                requests,
                errors,
                f"{r['input_tokens']:,}/{r['output_tokens']:,}",
                cost,
                _ms(r["latency_p50_s"]),
                _ms(r["latency_p95_s"]),
                _ms(r["ttft_p50_s"]),
                f"[cyan]{sparkline(r['series'])}[/]",
            )
        console().print(t)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--timeout",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.1, 60),
    help="Seconds each probe may take (all run at once).",
)
@pass_state
def doctor(state: State, as_json: bool, timeout: float) -> None:
    """Check plugins, providers, agents and metrics sinks: loaded, reachable, versions.

    Exits with 1 when something is broken (a plugin that fails to load, a config error, a
    provider whose plugin is missing); backends that are simply not running are reported
    with what to do, and are not an error.
    """
    from ..config import Config
    from ..doctor import BROKEN, run_checks
    from ..errors import ConfigError
    from ..runtime import Runtime

    config_error: ConfigError | None = None
    try:
        runtime = state.runtime
        runtime.config  # noqa: B018 - loading it is the check
    except ConfigError as exc:
        config_error = exc
        runtime = Runtime(Config(), None)
    try:
        checks = run_checks(runtime, timeout=timeout, config_error=config_error)
    except ConfigError as exc:  # a provider section the installed plugins reject
        checks = run_checks(Runtime(Config(), runtime.pm), timeout=timeout, config_error=exc)
    broken = [c for c in checks if c.status in BROKEN]
    if as_json:
        echo_json({"ok": not broken, "checks": [c.to_dict() for c in checks]})
    else:
        _doctor_table(checks)
    if broken:
        sys.exit(1)


_STYLE = {
    "ok": "green",
    "failed": "bold red",
    "lost events": "yellow",
    "unreachable": "yellow",
    "missing": "yellow",
    "timeout": "yellow",
    "disabled": "dim",
    "no probe": "cyan",
    "budget": "yellow",
}


def _doctor_table(checks: list[Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from .base import console

    t = Table(title="llmcore doctor", title_justify="left")
    for col in ("what", "status", "version", "models", "probe", "detail / what to do"):
        t.add_column(col, overflow="fold")
    for c in checks:
        models = (
            ""
            if c.models is None
            else (
                ", ".join(c.models[:3]) + (f" +{len(c.models) - 3}" if len(c.models) > 3 else "")
                or "none"
            )
        )
        style = _STYLE.get(c.status, "")
        detail = escape(c.detail[:160])
        if c.hint:
            detail += ("\n" if detail else "") + f"[bold]→ {escape(c.hint)}[/]"
        t.add_row(
            f"{c.component} [bold]{escape(c.name)}[/]",
            f"[{style}]{c.status}[/]" if style else c.status,
            escape(c.version or ""),
            escape(models),
            "" if c.latency_s is None else f"{c.latency_s * 1000:.0f} ms",
            detail,
        )
    console().print(t)
    bad = sum(c.status in ("failed", "unreachable", "missing", "timeout") for c in checks)
    console().print("all good" if not bad else f"{bad} item(s) need attention")
