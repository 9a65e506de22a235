"""``llmcore plugins``, ``providers`` and ``config``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .base import State, echo_json, pass_state, table
from .group import cli

if TYPE_CHECKING:
    from ..runtime import Runtime


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_state
def plugins(state: State, as_json: bool) -> None:
    """List installed plugins: loaded, disabled or failed (with the error)."""
    rt = state.runtime
    # Discovery hooks run now, so a plugin that raises while registering shows as failed.
    _ = rt.provider_types, rt.agent_types, rt.sink_types
    records = [r for r in rt.pm.records if r.entry_point is not None]
    if as_json:
        echo_json([r.to_dict() for r in records])
        return
    table(
        "plugins",
        ["name", "version", "status", "hooks", "error"],
        [
            (
                r.name,
                r.version,
                _status(r.status),
                ", ".join(h.removeprefix("llmcore_") for h in r.hooks),
                r.error,
            )
            for r in records
        ],
    )
    _warn_conflicts(rt)


def _warn_conflicts(rt: Runtime) -> None:
    """Two plugins offering one type name: say so on stderr, and which one is used."""
    for c in rt.pm.conflicts:
        click.echo(f"warning: {c.message()} (disable the other in plugins.disabled)", err=True)


def _status(s: str) -> str:
    return {"loaded": "[green]loaded[/]", "failed": "[red]failed[/]"}.get(s, f"[dim]{s}[/]")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_state
def providers(state: State, as_json: bool) -> None:
    """List configured providers and agents in routing order."""
    rt = state.runtime
    rt.validate()
    entries = rt.entries()
    if as_json:
        echo_json([e.to_dict() for e in entries])
        return
    table(
        "providers",
        ["name", "plugin", "kind", "enabled", "priority", "base url", "models"],
        [
            (
                e.name,
                e.plugin,
                e.kind,
                "yes" if e.enabled else "no",
                e.priority,
                e.base_url or "",
                ", ".join(e.models),
            )
            for e in entries
        ],
    )


@cli.group()
def config() -> None:
    """Show, validate or locate the configuration."""


@config.command("path")
@pass_state
def config_path(state: State) -> None:
    """Print the config file in use (or where one would be read from)."""
    from ..config import find_config, user_config_path

    found = find_config(state.config_path)
    click.echo(str(found) if found else f"(none; would read {user_config_path()})")


@config.command("validate")
@pass_state
def config_validate(state: State) -> None:
    """Check the config against the schema and the installed plugins; exit 2 on an error."""
    rt = state.runtime
    rt.validate()
    _ = rt.provider_types, rt.agent_types, rt.sink_types  # conflicts show up when collected
    _warn_conflicts(rt)
    click.echo(f"ok: {state.config.source or '(defaults, no config file)'}")


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of YAML.")
@pass_state
def config_show(state: State, as_json: bool) -> None:
    """Print the effective configuration; keys are never shown."""
    from ..config import redacted_dict

    data = redacted_dict(state.config)
    if as_json:
        echo_json(data)
        return
    import yaml

    click.echo(yaml.safe_dump(data, sort_keys=False))
