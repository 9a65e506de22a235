"""The root ``llmcore`` group: every command module of this package attaches to it."""

from __future__ import annotations

from typing import Any

import click

from .. import __version__
from .base import State


def _print_version(ctx: click.Context, _param: Any, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from ..plugins import installed_distributions

    click.echo(f"llmcore {__version__}")
    for name, version in installed_distributions():
        click.echo(f"  {name} {version}")
    ctx.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version of llmcore and its plugins.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar=None,
    help="Config file (default: $LLMCORE_CONFIG, ./llmcore.yaml, user config dir).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, debug: bool) -> None:
    """One CLI in front of every LLM server and terminal coding agent."""
    ctx.obj = State(config_path=config_path, debug=debug)
    ctx.call_on_close(ctx.obj.close)
