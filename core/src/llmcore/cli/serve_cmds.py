"""``llmcore serve``: the OpenAI-, Anthropic- and Responses-compatible gateway."""

from __future__ import annotations

import sys

import click

from .base import State, handle_errors, pass_state
from .group import cli


@cli.command()
@click.option(
    "--host",
    default=None,
    help="Address to listen on (default: serve.host, 127.0.0.1). A non-loopback "
    "address needs serve.keys or serve.allow_unauthenticated.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="TCP port (default: serve.port, 4000; 0 picks a free one and prints it).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="Worker processes sharing the port (default: serve.workers, 1).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Config file with the serve: section (the global --config; default: "
    "$LLMCORE_CONFIG, ./llmcore.yaml, user config dir).",
)
@click.option(
    "--allow-unauthenticated",
    is_flag=True,
    default=False,
    help="Listen on a non-loopback address even with no serve.keys configured.",
)
@pass_state
def serve(
    state: State,
    host: str | None,
    port: int | None,
    workers: int | None,
    config_file: str | None,
    allow_unauthenticated: bool,
) -> None:
    """Serve /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models (OpenAI),
    /v1/messages (Anthropic) and /v1/responses through llmcore's router, with /health,
    /health/ready and /metrics. The config file is the global --config (it may be given
    after the command too). Stops gracefully on SIGTERM or Ctrl-C."""
    with handle_errors(state.debug):
        from ..serve.server import Supervisor

        if config_file:  # only when called without the CLI's hoisting of --config
            state.config_path = config_file
        config = state.config
        s = config.serve
        if allow_unauthenticated:
            s.allow_unauthenticated = True
        sup = Supervisor(
            config, host or s.host, s.port if port is None else port, workers or s.workers
        )
        code = sup.run()
    sys.exit(code)
