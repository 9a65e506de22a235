"""``llmcore chat`` with logs, conversations (``-c``, ``--cid``, ``-i``), attachments and schemas.

``chat_cmds.chat`` hands over here when one of those is in play, so its plain path stays as
it was.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .base import State, echo_json, json_errors

if TYPE_CHECKING:
    from ..conversation import Conversation

PROMPT = "> "
HELP = (
    "Type a prompt and Enter. !multi starts several lines (end them with !end), "
    "!exit leaves (or Ctrl-D); Ctrl-C stops an answer."
)


def load_schema(text: str) -> dict[str, Any]:
    """``--schema``: inline JSON, or the path of a JSON file."""
    from ..errors import ConfigError

    raw = text
    if not text.lstrip().startswith("{"):
        p = Path(text).expanduser()
        if not p.is_file():
            raise ConfigError(
                f"--schema {text!r}: neither inline JSON nor a file",
                hint='give a JSON Schema file, or inline JSON like \'{"type": "object", ...}\'',
            )
        raw = p.read_text(encoding="utf-8")
    try:
        schema = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"--schema: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
            hint="check the schema's JSON",
        ) from None
    if not isinstance(schema, dict):
        raise ConfigError("--schema: a JSON Schema is an object ({...})")
    import jsonschema  # type: ignore[import-untyped]

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ConfigError(f"--schema: not a valid JSON Schema: {exc.message}") from None
    return schema


def extended_chat(
    state: State,
    prompt: tuple[str, ...],
    *,
    provider: str | None,
    model: str | None,
    system: str | None,
    opts: dict[str, Any],
    stream: bool,
    as_json: bool,
    attach: list[str],
    schema: str | None,
    log: bool | None,
    cont: bool,
    cid: str | None,
    interactive: bool,
) -> None:
    from ..errors import LLMCoreError
    from ..promptlog import last_conversation, log_path

    with json_errors(as_json):
        client = state.client
        path = log_path(state.config)
        if cont and cid is None:
            cid = last_conversation(path)
            if cid is None:
                raise LLMCoreError(
                    "there is no logged conversation to continue",
                    hint='log one first: `llmcore chat --log "..."` or '
                    "`logs: {enabled: true}` in llmcore.yaml",
                )
        if cid is not None and log is None:
            log = True  # a continued conversation goes on being logged, or -c loses it
        conv = client.conversation(
            cid, model=model, provider=provider, system=system, log=log, on_notice=_notice, **opts
        )
        if cid is not None and not conv.messages:
            raise LLMCoreError(
                f"no logged conversation {cid!r} in {path}",
                hint="list them with `llmcore logs --json`",
            )
        if interactive:
            session(conv, stream=stream and not as_json, attach=attach)
            return
        from .base import chat_footer, prompt_text

        text = prompt_text(prompt)
        if schema is not None:
            spec = load_schema(schema)
            msgs = conv._turn(text)
            obj = client.chat(
                msgs,
                model=model,
                provider=provider,
                schema=spec,
                attachments=attach,
                log=log,
                _conversation_id=conv.cid,
                **opts,
            )
            click.echo(json.dumps(obj, indent=2))
            return
        if not stream:
            resp = conv.send(text, attachments=attach)
            if as_json:
                echo_json({**resp.to_dict(), "conversation_id": conv.cid})
                return
            click.echo(resp.content)
            chat_footer(resp.provider, resp.model, resp.usage, resp.latency_s)
            return
        t0 = time.monotonic()
        last = _stream_turn(conv, text, attach)
        if last is not None:
            chat_footer(last.provider, last.model, last.usage, time.monotonic() - t0)


def _notice(text: str) -> None:
    click.secho(f"note: {text}", err=True, fg="yellow")


def _stream_turn(conv: Conversation, text: str, attach: list[str]) -> Any:
    """Stream one answer to stdout; Ctrl-C stops it (the part received is kept)."""
    gen = conv.stream(text, attachments=attach)
    last = None
    try:
        for chunk in gen:
            if chunk.content:
                click.echo(chunk.content, nl=False)
                sys.stdout.flush()
            last = chunk
    except KeyboardInterrupt:
        gen.close()
        click.echo("")
        click.secho("[stopped]", err=True, fg="yellow")
        return None
    click.echo("")
    return last


def _read_prompt() -> str | None:
    """One prompt from the terminal; ``None`` to leave."""
    while True:
        try:
            line = input(PROMPT)
        except EOFError:
            return None
        except KeyboardInterrupt:  # at the prompt: drop the line, stay
            click.echo("")
            continue
        word = line.strip()
        if word in ("!exit", "!quit"):
            return None
        if word == "!multi":
            lines = []
            while True:
                try:
                    more = input("")
                except EOFError:
                    break
                if more.strip() == "!end":
                    break
                lines.append(more)
            return "\n".join(lines)
        if word:
            return line


def session(conv: Conversation, *, stream: bool, attach: list[str]) -> None:
    """The interactive chat: each prompt is a turn of ``conv``; errors are shown and the
    session goes on."""
    from ..errors import LLMCoreError

    click.secho(f"chatting (conversation {conv.cid}). {HELP}", err=True, dim=True)
    first = True
    while True:
        text = _read_prompt()
        if text is None:
            click.echo("", err=True)
            return
        files = attach if first else []
        try:
            if stream:
                _stream_turn(conv, text, files)
            else:
                click.echo(conv.send(text, attachments=files).content)
            first = False
        except KeyboardInterrupt:
            click.secho("[stopped]", err=True, fg="yellow")
        except LLMCoreError as exc:
            click.secho(f"error: {exc}", err=True, fg="red")
