"""Every hook a plugin can implement.

A plugin is a module (or object) registered through the ``llmcore`` entry-point group. It
implements hooks by defining functions with these names, decorated with
:data:`llmcore.hookimpl`. Each docstring below says when the hook is called, what it gets and
what it may return; it is written to be read on its own.

The plugin interface has a version, :data:`HOOK_API_VERSION`. A plugin may declare the
versions it supports as ``LLMCORE_HOOK_API = ">=1,<2"`` (or a single major number) at module
level; a plugin that asks for another major version is reported as failed instead of breaking
at call time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from .agents import Agent
    from .config import Config
    from .hooks import AgentCall, GenerationCall
    from .metrics import MetricsEvent, MetricsSink
    from .provider import Provider

PROJECT = "llmcore"
#: The version of the plugin interface this core offers. The major number is bumped on any
#: breaking change, the minor one when a hook is added (1.1: ``llmcore_plugin_active``).
HOOK_API_VERSION = "1.1"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def llmcore_register_providers() -> list[type[Provider]]:  # type: ignore[empty-body]
    """Offer provider classes (HTTP backends).

    Called once, when the plugin manager first builds the provider table (the first
    ``Client`` or a CLI command that lists providers), not at import time.

    Return a list of :class:`llmcore.Provider` subclasses. Each class names its type in
    ``type_name`` (``"ollama"``); users refer to that name with ``plugin:`` in a provider
    section of ``llmcore.yaml``, and may configure several instances of one type. A class
    may declare extra configuration keys as an attrs class in ``Options``.

    Import heavy libraries inside methods, not at module level: this hook runs on every
    start of the CLI.
    """


@hookspec
def llmcore_register_agents() -> list[type[Agent]]:  # type: ignore[empty-body]
    """Offer agent classes (coding agents run as subprocesses).

    Called once, when the agent table is first built. Return a list of
    :class:`llmcore.Agent` subclasses, each with a ``type_name`` (``"aider"``) and the name of
    the program it runs. Finding the program must be cheap and must never raise: the class
    is also used to list agents that are not installed.
    """


@hookspec
def llmcore_register_metrics_sinks() -> list[type[MetricsSink]]:  # type: ignore[empty-body]
    """Offer metrics sink classes.

    Called once, when metrics are first set up. Return a list of
    :class:`llmcore.metrics.MetricsSink` subclasses, each with a ``type_name``. A sink is
    built only when ``metrics.sinks`` in the configuration names it; it receives its own
    section of ``metrics`` (``metrics.<type_name>``) as a dict.
    """


@hookspec(firstresult=True)
def llmcore_generate(call: GenerationCall) -> Any:
    """Wrap every model call: chat, stream, text completion and embedding.

    Called once per attempt on a provider (so a retried or failed-over request passes
    through it once per try), with a :class:`llmcore.hooks.GenerationCall` that holds the
    ``request``, the ``provider`` about to be called, the ``operation`` (``"chat"``,
    ``"stream"``, ``"generate"``, ``"embed"``), whether the call ``is_async``,
    ``proceed()``, which performs the call, the client's ``config`` (read a plugin's own
    section with ``llmcore.config_section``) and ``emit``, which sends a
    :class:`llmcore.MetricsEvent` to the client's sinks (both ``None`` outside a client).

    The core's own implementation runs last and returns ``call.proceed()``. A plugin may:

    * return a value to answer without calling the provider (a cache hit); it must be what
      the operation returns: a ``ChatResponse``, an iterator of ``StreamChunk`` (an async
      iterator or awaitable when ``call.is_async``), or an ``EmbeddingResponse``;
    * rewrite the request in place (``call.request``) and return ``None`` to let it go on;
    * raise an :class:`llmcore.LLMCoreError` to refuse it (a guardrail);
    * observe or change the result with ``@hookimpl(wrapper=True)``: ``result = yield``,
      then return it (or another value).

    Return ``None`` to let the call go on unchanged.
    """


@hookspec(firstresult=True)
def llmcore_run_agent(call: AgentCall) -> Any:
    """Wrap every agent run.

    Called once per run with a :class:`llmcore.hooks.AgentCall` holding the ``task``
    (an :class:`llmcore.AgentTask`: prompt, cwd, mode, model, resume, timeout), the
    ``agent`` instance, and ``proceed()``, which runs the program. The core's own
    implementation runs last and returns ``call.proceed()``.

    A plugin may change ``call.task`` and return ``None``, refuse by raising an
    :class:`llmcore.AgentError`, return an :class:`llmcore.AgentResult` itself, or observe
    the result with ``@hookimpl(wrapper=True)`` (``result = yield``).
    """


@hookspec
def llmcore_metrics_event(event: MetricsEvent) -> None:
    """Receive every metrics event as it happens.

    Called for every request, attempt, retry, failover, cooldown, stream and agent run,
    with an :class:`llmcore.metrics.MetricsEvent`. Called on the request path: return
    quickly and never raise (an exception is reported once and then ignored). The return
    value is ignored. For durable storage, write a sink instead
    (:func:`llmcore_register_metrics_sinks`), which is written off the request path.
    """


@hookspec
def llmcore_register_commands(cli: click.Group) -> None:
    """Add commands to the ``llmcore`` CLI.

    Called once when the CLI starts, with the top-level :class:`click.Group`. Add commands
    with ``@cli.command()``. Keep imports inside the command functions: ``llmcore --help``
    runs this hook for every installed plugin. The return value is ignored.
    """


@hookspec
def llmcore_register_model_facts() -> dict[str, Any]:  # type: ignore[empty-body]
    """Offer facts about models: prices, context lengths and capabilities.

    Called once per process, when the first provider instances are built (a ``Client``, or
    a CLI command that routes or lists models), so a plugin for a hosted API can price its
    models without anyone editing llmcore's bundled data.

    Return a mapping in the format of the bundled ``llmcore/data/models.yaml`` (and of a
    user's ``registry.path`` file)::

        {"models": {
            "acme-large": {
                "aliases": ["acme-large-latest"],
                "context": 128000,
                "capabilities": ["chat", "tools", "vision"],
                "price": {"input": 2.0, "output": 8.0, "cached_input": 0.2},
            }}}

    Prices are USD per million tokens; ``cached_input`` is charged for ``cached_tokens``.
    A ``local_provider_types`` list may name provider types whose models cost nothing.
    These facts sit above the bundled data and below what providers report and the user's
    own file, field by field. A mapping that does not follow the format marks the plugin
    failed (``llmcore plugins`` shows why) and its facts are ignored; return ``{}`` or
    ``None`` to offer nothing.
    """


@hookspec
def llmcore_config_sections() -> list[tuple[str, type]]:  # type: ignore[empty-body]
    """Declare top-level sections of ``llmcore.yaml`` that belong to this plugin.

    Called only when a config file has a top-level key the core does not know. Return a
    list of ``(name, OptionsClass)`` pairs, ``OptionsClass`` being an attrs class with a
    default for every field. The section is then checked like the core's own (unknown
    keys get a "did you mean" suggestion, wrong types name the key and line) and its
    structured value is read with ``llmcore.config.section(config, name, OptionsClass)``
    (defaults when the file has no such section). Pick a name no other plugin uses: the
    first plugin to declare a name keeps it.
    """


@hookspec
def llmcore_plugin_active(config: Config) -> bool | None:
    """Say whether this plugin takes part in the model calls made under ``config``.

    Called once per config (not per call), the first time a call is made under it, with
    the :class:`llmcore.Config` in use. Return ``False`` when that config turns the plugin
    off (the cache plugin without a ``cache:`` section): its ``llmcore_generate``
    implementations are then left out of those calls entirely, so a plugin that is off
    costs nothing per call (a wrapper that returns at once still costs pluggy's machinery,
    a few microseconds). Return ``True`` or ``None`` (or do not implement the hook) to take
    part. A plugin whose implementation raises is marked failed and left out.
    Declare ``LLMCORE_HOOK_API = ">=1.1,<2"`` when you implement it.
    """


ALL_HOOKS: tuple[Callable[..., Any], ...] = (
    llmcore_register_providers,
    llmcore_register_agents,
    llmcore_register_metrics_sinks,
    llmcore_generate,
    llmcore_run_agent,
    llmcore_metrics_event,
    llmcore_register_commands,
    llmcore_register_model_facts,
    llmcore_config_sections,
    llmcore_plugin_active,
)
