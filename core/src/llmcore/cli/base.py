"""What every command shares: lazy runtime, output helpers, error handling."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ..client import Client
    from ..config import Config
    from ..runtime import Runtime


#: The plugin manager the CLI built at start-up (to add plugin commands), reused by commands.
SHARED_PM: Any = None


class State:
    """Built on first use so that ``--help`` never loads plugins or config."""

    def __init__(self, config_path: str | None, debug: bool) -> None:
        self.config_path = config_path
        self.debug = debug
        self._config: Config | None = None
        self._client: Client | None = None
        self._runtime: Runtime | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            from ..config import load_config

            self._config = load_config(self.config_path, cache=True)
        return self._config

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            if self._client is not None:
                self._runtime = self._client.runtime
            else:
                from ..runtime import Runtime

                pm = SHARED_PM
                if pm is not None and pm._disabled != list(self.config.plugins.disabled):
                    pm = None
                self._runtime = Runtime(self.config, pm)
        return self._runtime

    @property
    def client(self) -> Client:
        if self._client is None:
            from ..client import Client

            # One Runtime per command: the client, its router and the commands share it,
            # so every provider built is closed once by close().
            self._client = Client(runtime=self.runtime)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        elif self._runtime is not None:
            self._runtime.close()


pass_state = click.make_pass_decorator(State)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*["" if v is None else str(v) for v in r])
    console().print(t)


@contextlib.contextmanager
def handle_errors(debug: bool) -> Iterator[None]:
    """Print llmcore errors as one clear message on stderr, with the right exit code."""
    from ..errors import LLMCoreError

    try:
        yield
    except LLMCoreError as exc:
        if debug:
            raise
        from ..errors import AllProvidersFailed

        if isinstance(exc, AllProvidersFailed):
            print_attempts(exc)
        else:
            click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


@contextlib.contextmanager
def json_errors(as_json: bool) -> Iterator[None]:
    """With ``--json``, an llmcore error is one JSON object on stdout (and the exit code);
    without, it goes on to :func:`handle_errors`."""
    from ..errors import LLMCoreError

    try:
        yield
    except LLMCoreError as exc:
        if not as_json:
            raise
        echo_json(error_json(exc))
        sys.exit(exc.exit_code)


def print_attempts(exc: Any) -> None:
    """Every provider failed: a table on a terminal (hints below it, never wrapped), the
    plain lines of the error's message anywhere else (a file, a pipe, CI logs)."""
    if not exc.attempts or not sys.stderr.isatty():
        click.echo(f"error: {exc.message}", err=True)
        return
    from rich.table import Table

    t = Table(title="every provider failed", title_justify="left")
    for c in ("provider", "model", "error", "time"):
        t.add_column(c)
    for a in exc.attempts:
        what = f"{a.error_type} {a.status or ''}".strip()
        if a.skipped:
            what = {
                "CoolingDown": "cooling down",
                "OverBudget": "budget",
                "NoVision": "cannot see images",
            }.get(a.error_type or "", "skipped")
        t.add_row(
            a.provider,
            a.model or "-",
            f"{what}: {a.message}"[:160],
            f"{a.duration_s * 1000:.0f} ms",
        )
    console(stderr=True).print(t)
    # Hints hold commands to copy (`ollama pull llama3.2`): one plain line each.
    for a in exc.attempts:
        if a.hint:
            click.echo(f"  fix {a.provider}: {a.hint}", err=True)


def error_json(exc: Any) -> dict[str, Any]:
    """A failure as the one JSON object ``--json`` commands print on stdout (``ok`` is
    false, as commands that report ``ok`` on success print it)."""
    return {
        "ok": False,
        "error": exc.message,
        "error_type": type(exc).__name__.split("_")[0],
        "hint": exc.hint,
        "attempts": [a.to_dict() for a in getattr(exc, "attempts", None) or []],
    }


def prompt_text(words: tuple[str, ...]) -> str:
    """The prompt from the arguments; ``-`` (or nothing, with a pipe) reads stdin."""
    text = " ".join(words)
    if text == "-" or (not text and not sys.stdin.isatty()):
        text = sys.stdin.read()
    if not text.strip():
        raise click.UsageError(
            'give a prompt: llmcore chat "your question" (or - to read it from stdin)'
        )
    return text


def chat_footer(provider: str | None, model: str | None, usage: Any, seconds: float) -> None:
    """One dim line on stderr (only on a terminal, so pipes get just the answer)."""
    if not sys.stderr.isatty():
        return
    tokens = f" · {usage.input_tokens} in / {usage.output_tokens} out" if usage else ""
    click.secho(f"[{provider or '?'}/{model or '?'}{tokens} · {seconds:.2f} s]", err=True, dim=True)
