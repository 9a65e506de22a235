"""Model commands: ``llmcore chat``, ``llmcore embed``, ``llmcore models`` (and ``models pull``)."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from .base import (
    State,
    chat_footer,
    echo_json,
    json_errors,
    pass_state,
    prompt_text,
    table,
)
from .group import cli


@cli.command()
@click.argument("prompt", nargs=-1)
@click.option("--provider", "-p", help="Send to this provider only (default: routing order).")
@click.option("--model", "-m", help="Model name (default: the provider's first model).")
@click.option("--system", "-s", help="A system message sent before the prompt.")
@click.option("--temperature", type=float, help="Sampling temperature.")
@click.option("--max-tokens", type=int, help="Most tokens to generate.")
@click.option("--no-stream", is_flag=True, help="Wait for the whole answer, then print it.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON object (content, provider, model, usage, latency_s, "
    "attempts); implies --no-stream.",
)
@click.option(
    "--attach",
    "-a",
    "attach",
    multiple=True,
    metavar="FILE|URL",
    help="An image to send with the prompt (PNG, JPEG, GIF, WebP); repeatable.",
)
@click.option(
    "--schema",
    metavar="FILE|JSON",
    help="A JSON Schema (a file or inline JSON): the answer is checked against it "
    "(asked again when it does not fit) and printed as JSON.",
)
@click.option(
    "--log/--no-log",
    "log",
    default=None,
    help="Log this prompt and answer (default: logs.enabled in llmcore.yaml).",
)
@click.option(
    "--continue", "-c", "cont", is_flag=True, help="Continue the last logged conversation."
)
@click.option("--cid", help="Continue logged conversation ID (see `llmcore logs`).")
@click.option(
    "--interactive",
    "-i",
    is_flag=True,
    help="A chat session: type prompts, !multi for several lines, !exit to leave; "
    "Ctrl-C stops an answer.",
)
@pass_state
def chat(
    state: State,
    prompt: tuple[str, ...],
    provider: str | None,
    model: str | None,
    system: str | None,
    temperature: float | None,
    max_tokens: int | None,
    no_stream: bool,
    as_json: bool,
    attach: tuple[str, ...],
    schema: str | None,
    log: bool | None,
    cont: bool,
    cid: str | None,
    interactive: bool,
) -> None:
    """Ask a model; the answer streams to the terminal as it is generated."""
    # With --json every failure is one JSON object on stdout, a config error included
    # (the config is first read here, by state.config / state.client).
    with json_errors(as_json):
        opts: dict[str, Any] = {}
        if temperature is not None:
            opts["temperature"] = temperature
        if max_tokens is not None:
            opts["max_tokens"] = max_tokens
        # Logs, conversations, attachments, schemas and sessions: llmcore.cli.chat_extras.
        if (
            interactive
            or attach
            or schema
            or cont
            or cid
            or log
            or (log is None and state.config.logs.enabled)
        ):
            from .chat_extras import extended_chat

            extended_chat(
                state,
                prompt,
                provider=provider,
                model=model,
                system=system,
                opts=opts,
                stream=not (no_stream or as_json),
                as_json=as_json,
                attach=list(attach),
                schema=schema,
                log=log,
                cont=cont,
                cid=cid,
                interactive=interactive,
            )
            return
        text = prompt_text(prompt)
        if as_json:
            resp = state.client.chat(text, model=model, provider=provider, system=system, **opts)
            echo_json(resp.to_dict())
            return
        client = state.client
        if no_stream:
            resp = client.chat(text, model=model, provider=provider, system=system, **opts)
            if resp.thinking:
                click.secho(resp.thinking, err=True, dim=True)
            click.echo(resp.content)
            chat_footer(resp.provider, resp.model, resp.usage, resp.latency_s)
            return
        t0 = time.monotonic()
        last: Any = None
        in_thinking = False
        for chunk in client.stream(text, model=model, provider=provider, system=system, **opts):
            if chunk.thinking:
                click.secho(chunk.thinking, err=True, dim=True, nl=False)
                in_thinking = True
            if chunk.content:
                if in_thinking:
                    click.echo("", err=True)
                    in_thinking = False
                click.echo(chunk.content, nl=False)
                sys.stdout.flush()
            last = chunk
        click.echo("")
        if last is not None:
            chat_footer(last.provider, last.model, last.usage, time.monotonic() - t0)


@cli.command()
@click.argument("text", nargs=-1, required=True)
@click.option("--provider", "-p", help="Use this provider only.")
@click.option("--model", "-m", help="Embedding model name.")
@click.option("--json", "as_json", is_flag=True, help="Print the vectors as JSON.")
@pass_state
def embed(
    state: State, text: tuple[str, ...], provider: str | None, model: str | None, as_json: bool
) -> None:
    """Embed TEXT (each argument is one input) and print the vectors."""
    resp = state.client.embed(list(text), model=model, provider=provider)
    if as_json:
        echo_json(resp.to_dict())
        return
    dims = len(resp.vectors[0]) if resp.vectors else 0
    click.echo(
        f"{len(resp.vectors)} vector(s) of {dims} dimensions from "
        f"{resp.provider}/{resp.model or '-'}"
    )
    for t, vec in zip(text, resp.vectors, strict=False):
        head = ", ".join(f"{v:.4f}" for v in vec[:6])
        click.echo(f"  {t[:40]!r}: [{head}{', …' if len(vec) > 6 else ''}]")


@cli.group(invoke_without_command=True)
@click.option("--provider", "-p", help="List this provider's models only.")
@click.option(
    "--capability",
    "-c",
    "capabilities",
    multiple=True,
    help="Only models with this capability (code, chat, reasoning, vision, "
    "embedding, tools); repeat for several.",
)
@click.option(
    "--refresh",
    is_flag=True,
    help="Ask every provider again now instead of using the registry's cache.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def models(
    ctx: click.Context,
    provider: str | None,
    capabilities: tuple[str, ...],
    refresh: bool,
    as_json: bool,
) -> None:
    """List the models each provider serves, with context length and capabilities.

    What a provider reports is completed from the model registry (bundled, your own
    registry file, and what providers reported before). A provider that cannot be reached
    is reported and the others are still listed (with --provider, it is an error).
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..errors import ProviderError
    from ..registry import get_registry

    state = ctx.find_object(State)
    assert state is not None
    providers = state.runtime.providers
    if provider is not None:
        _check_provider(provider, providers)
    registry = get_registry(state.config)
    if refresh:
        chosen = {n: p for n, p in providers.items() if provider in (None, n)}
        for name, got in registry.sync(chosen, force=True).items():
            if isinstance(got, str):
                click.secho(f"{name}: not refreshed: {got}", err=True, fg="yellow")
    rows: list[Any] = []
    failures: list[dict[str, Any]] = []
    for name, p in providers.items():
        if provider is not None and name != provider:
            continue
        try:
            rows.extend(p.models())
        except NotImplementedError:
            continue
        except ProviderError as exc:
            if provider is not None:
                raise
            failures.append({"provider": name, "error": exc.message, "hint": exc.hint})
    for f in failures:  # stderr, so --json output stays one list
        click.secho(f"{f['provider']}: {f['error']}", err=True, fg="yellow")
    types = {name: p.type_name for name, p in providers.items()}
    for m in rows:
        _complete(m, registry.info(m.name, types.get(m.provider or "", "")))
    if capabilities:
        wanted = list(capabilities)
        rows = [
            m
            for m in rows
            if set(wanted) <= set(m.capabilities)
            or registry.qualifies(m.name, types.get(m.provider or "", ""), wanted, None)
        ]
    if as_json:
        echo_json([m.to_dict() for m in rows])
        return
    table(
        "models",
        ["provider", "model", "context", "capabilities", "loaded", "quantization"],
        [
            (
                m.provider,
                m.name,
                m.context_length,
                ", ".join(m.capabilities),
                {True: "yes", False: "no", None: ""}[m.loaded],
                m.quantization,
            )
            for m in rows
        ],
    )


def _complete(model: Any, entry: Any) -> None:
    """Fill what the provider did not report from the registry entry, if there is one."""
    if entry is None:
        return
    if model.context_length is None:
        model.context_length = entry.context_length
    for cap in entry.capabilities:
        if cap not in model.capabilities:
            model.capabilities.append(cap)


def _check_provider(name: str, providers: dict[str, Any]) -> None:
    if name not in providers:
        from ..config import suggest
        from ..errors import ConfigError

        raise ConfigError(
            f"no enabled provider named {name!r}{suggest(name, providers)}",
            hint="enabled: " + (", ".join(providers) or "none"),
        )


@models.command("pull")
@click.argument("name")
@click.option(
    "--provider", "-p", help="The provider to pull onto (default: the first one that can pull)."
)
@pass_state
def models_pull(state: State, name: str, provider: str | None) -> None:
    """Download model NAME onto a provider (e.g. Ollama), with a progress bar."""
    from ..provider import Provider

    providers = state.runtime.providers
    if provider is not None:
        _check_provider(provider, providers)
        target = providers[provider]
    else:
        able = [p for p in providers.values() if type(p).pull is not Provider.pull]
        if not able:
            raise click.UsageError("no enabled provider can pull models; pass --provider")
        target = able[0]
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        transient=False,
    ) as bar:
        task = bar.add_task(f"{target.name}: {name}", total=None)

        def progress(status: str, done: int | None = None, total: int | None = None) -> None:
            bar.update(
                task,
                description=f"{target.name}: {name}: {status}",
                completed=done or 0,
                total=total or None,
            )

        try:
            target.pull(name, progress)
        except NotImplementedError as exc:
            raise click.UsageError(f"{target.name} cannot pull models: {exc}") from None
    click.echo(f"pulled {name} onto {target.name}")
