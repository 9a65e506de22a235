"""``llmcore cache stats`` and ``llmcore cache clear`` (added through llmcore_register_commands)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click


def _store(ctx: click.Context, as_json: bool) -> Any:
    import llmcore

    from .cache import cache_for

    try:
        config = llmcore.load_config(ctx.find_root().params.get("config_path"))
        _opts, store = cache_for(config)
    except llmcore.LLMCoreError as exc:
        _fail(as_json, exc.message, exc.hint, getattr(exc, "exit_code", 1))
    if store is None:
        _fail(
            as_json,
            "the cache is off: llmcore.yaml has no cache: section, or it says enabled: false",
            "add `cache: {}` to llmcore.yaml to turn it on",
            1,
        )
    return store


def _fail(as_json: bool, message: str, hint: str | None, code: int) -> None:
    if as_json:
        click.echo(json.dumps({"ok": False, "message": message, "hint": hint}))
    else:
        click.echo(f"error: {message}" + (f"\n  hint: {hint}" if hint else ""), err=True)
    sys.exit(code)


def register(cli: click.Group) -> None:
    @cli.group()
    def cache() -> None:
        """The response cache (llmcore-plugin-cache): what it holds, and emptying it."""

    @cache.command()
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    @click.pass_context
    def stats(ctx: click.Context, as_json: bool) -> None:
        """Entries, hits and size of the cache."""
        s = _store(ctx, as_json).stats()
        if as_json:
            click.echo(json.dumps({"ok": True, **s}))
            return
        click.echo(
            f"{s['backend']} cache at {s['location']}: {s['entries']} entries, "
            f"{s['hits']} hits, {s['bytes']:,} bytes of answers"
        )

    @cache.command()
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    @click.pass_context
    def clear(ctx: click.Context, as_json: bool) -> None:
        """Delete every cached answer."""
        n = _store(ctx, as_json).clear()
        if as_json:
            click.echo(json.dumps({"ok": True, "deleted": n}))
        else:
            click.echo(f"deleted {n} cached answer(s)")
