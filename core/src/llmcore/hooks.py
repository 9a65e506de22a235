"""The hooks as llmcore calls them: the typed façade (:class:`Hooks`), what the generation
and agent hooks receive, and the core's own (innermost) implementations."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from .hookspecs import hookimpl

if TYPE_CHECKING:
    import click

    from .agents import Agent
    from .metrics import MetricsEvent
    from .plugins import PluginManager
    from .provider import Provider
    from .types import AgentResult, AgentTask


@attrs.define
class GenerationCall:
    """One attempt on one provider, as seen by ``llmcore_generate`` implementations."""

    operation: str
    request: Any
    provider: Provider
    is_async: bool
    _proceed: Callable[[Any], Any] = attrs.field(repr=False, alias="proceed")
    #: The configuration of the client making the call (a plugin reads its own top-level
    #: section with ``llmcore.config_section``); ``None`` when called outside a client.
    config: Any = attrs.field(default=None, repr=False)
    #: Emit a :class:`llmcore.MetricsEvent` to this client's sinks and metrics hooks (e.g.
    #: a cache hit); ``None`` when called outside a client.
    emit: Callable[[Any], None] | None = attrs.field(default=None, repr=False)

    def proceed(self) -> Any:
        """Perform the call with the current ``request`` and return what the provider gives."""
        return self._proceed(self.request)


@attrs.define
class AgentCall:
    """One agent run, as seen by ``llmcore_run_agent`` implementations."""

    task: AgentTask
    agent: Agent
    _proceed: Callable[[AgentTask], Any] = attrs.field(repr=False, alias="proceed")

    def proceed(self) -> Any:
        """Run the agent with the current ``task`` and return its ``AgentResult``."""
        return self._proceed(self.task)


#: The names llmcore's own plugins are registered under (by ``PluginManager``): the core's
#: innermost implementations and the built-in plugin's.
_CORE_PLUGINS = frozenset({"llmcore.core", "llmcore.builtin"})


class CoreHooks:
    """The core's implementations: registered last, so plugins' run first."""

    @hookimpl(trylast=True)
    def llmcore_generate(self, call: GenerationCall) -> Any:
        return call.proceed()

    @hookimpl(trylast=True)
    def llmcore_run_agent(self, call: AgentCall) -> Any:
        return call.proceed()


class Hooks:
    """The typed façade over the plugin hooks: one method per hook.

    Everything in llmcore calls hooks through this object (``runtime.hooks``), never
    through pluggy's untyped hook relay, so each call site is checked by the
    type checker and the hook's calling convention (keyword arguments, first result,
    per-plugin isolation of discovery) lives in one place.
    """

    def __init__(self, manager: PluginManager) -> None:
        self._manager = manager
        self._relay = manager.pm.hook

    # -- discovery: per plugin, a failing plugin is recorded and skipped -----------------
    def register_providers(self) -> list[tuple[str, Any]]:
        """``(plugin name, offered class)`` for every provider class offered."""
        return self._manager.call_discovery("llmcore_register_providers")

    def register_agents(self) -> list[tuple[str, Any]]:
        return self._manager.call_discovery("llmcore_register_agents")

    def register_metrics_sinks(self) -> list[tuple[str, Any]]:
        return self._manager.call_discovery("llmcore_register_metrics_sinks")

    def register_model_facts(self) -> list[tuple[str, Any]]:
        """``(plugin name, facts mapping)`` in precedence order (the core first)."""
        return self._manager.call_facts()

    def register_commands(self, cli: click.Group) -> None:
        self._relay.llmcore_register_commands(cli=cli)

    # -- around every call and run -----------------------------------------------------
    def generate(self, call: GenerationCall) -> Any:
        """The result of one provider attempt, through every ``llmcore_generate`` impl."""
        caller = self._relay.llmcore_generate
        impls = caller.get_hookimpls()
        for impl in impls:
            if impl.plugin_name not in _CORE_PLUGINS or impl.hookwrapper or impl.wrapper:
                return caller(call=call)
        # Only llmcore's own implementations (plain ones, no plugin wraps calls): run them
        # as pluggy would, last registered first, the first non-None result wins, without
        # its multicall machinery, which was a tenth of llmcore's own time per request.
        for impl in reversed(impls):
            result = impl.function(call)
            if result is not None:
                return result
        return None

    def run_agent(self, call: AgentCall) -> AgentResult:
        """The result of one agent run, through every ``llmcore_run_agent`` impl."""
        result: AgentResult = self._relay.llmcore_run_agent(call=call)
        return result

    # -- metrics -------------------------------------------------------------------------
    def has_metrics_listeners(self) -> bool:
        """Does any plugin implement ``llmcore_metrics_event``?"""
        return bool(self._relay.llmcore_metrics_event.get_hookimpls())

    def metrics_event(self, event: MetricsEvent) -> None:
        self._relay.llmcore_metrics_event(event=event)
