"""The ``llmcore`` command. Each command group lives in its own module of this package."""

from __future__ import annotations

import sys

from . import base
from .base import handle_errors
from .group import cli


def _load_commands() -> None:
    from . import (  # noqa: F401
        agent_cmds,
        chat_cmds,
        core_cmds,
        install_cmds,
        log_cmds,
        ops_cmds,
        plugin_cmds,
        serve_cmds,
    )


_load_commands()


def _plugin_commands() -> None:
    """Let plugins add commands; a plugin that breaks here is reported, never fatal."""
    if _command_name(sys.argv[1:]) == "uninstall":
        return  # removing a broken plugin must always work
    from ..config import load_config
    from ..errors import LLMCoreError
    from ..plugins import PluginManager

    cfg_path = None
    if "--config" in sys.argv:
        i = sys.argv.index("--config")
        cfg_path = sys.argv[i + 1] if i + 1 < len(sys.argv) else None
    try:
        disabled = load_config(cfg_path, cache=True).plugins.disabled
    except LLMCoreError:
        return  # the command itself reports the config error, with exit code 2
    try:
        pm = PluginManager(disabled=disabled)
        base.SHARED_PM = pm
        pm.hooks.register_commands(cli)
    except Exception as exc:
        print(f"llmcore: a plugin failed to add its commands: {exc}", file=sys.stderr)


def _command_name(argv: list[str]) -> str | None:
    """The subcommand, after the global options that main() moved to the front."""
    i = 0
    while i < len(argv) and (argv[i] in ("--debug", "--config") or argv[i].startswith("--config=")):
        i += 2 if argv[i] == "--config" else 1
    return argv[i] if i < len(argv) else None


def _hoist_global_options(argv: list[str]) -> list[str]:
    """Accept ``--config PATH`` and ``--debug`` anywhere, as users type them."""
    out: list[str] = []
    front: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            out.extend(argv[i:])
            break
        if a == "--config" and i + 1 < len(argv):
            front += argv[i : i + 2]
            i += 2
            continue
        if a.startswith("--config=") or a == "--debug":
            front.append(a)
        else:
            out.append(a)
        i += 1
    return front + out


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``llmcore`` script."""
    argv = _hoist_global_options(list(sys.argv[1:] if argv is None else argv))
    sys.argv[1:] = argv
    _plugin_commands()
    with handle_errors("--debug" in argv):
        cli.main(args=argv, prog_name="llmcore", standalone_mode=True)


__all__ = ["cli", "main"]
