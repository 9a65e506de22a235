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


#: How ``llmcore_generate`` is called: pluggy's caller, or (caller None) the core's own
#: implementation functions in calling order.
_Route = tuple[Any, list[Callable[[Any], Any]]]


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
        #: How ``llmcore_generate`` runs under one config, worked out on its first call:
        #: id(config) -> (config, the impls it was worked out from, the route).
        self._routes: dict[int, tuple[Any, list[Any], _Route]] = {}

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
        """The result of one provider attempt, through every ``llmcore_generate`` impl
        of the plugins taking part under the call's config (``llmcore_plugin_active``)."""
        impls = self._relay.llmcore_generate.get_hookimpls()
        got = self._routes.get(id(call.config))
        if got is None or got[0] is not call.config or got[1] != impls:
            got = (call.config, impls, self._route(call.config, impls))
            if len(self._routes) >= 64:  # a long-lived manager seeing many configs
                self._routes.clear()
            self._routes[id(call.config)] = got
        caller, fast = got[2]
        if caller is not None:
            return caller(call=call)
        # Only llmcore's own implementations (plain ones, no plugin wraps calls): run them
        # as pluggy would, last registered first, the first non-None result wins, without
        # its multicall machinery, which was a tenth of llmcore's own time per request.
        for function in fast:
            result = function(call)
            if result is not None:
                return result
        return None

    def _route(self, config: Any, impls: list[Any]) -> _Route:
        """pluggy's caller (without the plugins that are off), or, when only llmcore's own
        plain implementations take part, their functions in calling order."""
        off = self.plugins_off(config)
        kept = [i for i in impls if i.plugin_name not in off]
        if all(i.plugin_name in _CORE_PLUGINS and not (i.hookwrapper or i.wrapper) for i in kept):
            return None, [i.function for i in reversed(kept)]
        if not off:
            return self._relay.llmcore_generate, []
        pm = self._manager.pm
        gone = [p for p in (pm.get_plugin(name) for name in off) if p is not None]
        return pm.subset_hook_caller("llmcore_generate", remove_plugins=gone), []

    def plugins_off(self, config: Any) -> set[str]:
        """The plugins whose ``llmcore_plugin_active`` says they are off under ``config``
        (a plugin whose implementation raises is marked failed and counted off)."""
        if config is None:
            return set()
        off: set[str] = set()
        for impl in self._relay.llmcore_plugin_active.get_hookimpls():
            try:
                active = impl.function(config)
            except Exception as exc:
                self._manager.mark_failed(impl.plugin_name, exc)
                active = False
            if active is False:
                off.add(impl.plugin_name)
        return off

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
