"""Ties config and plugins together: which provider, agent and sink instances exist."""

from __future__ import annotations

import functools
from typing import Any

import attrs

from .agents import Agent
from .config import AgentConfig, Config, ProviderConfig, check_plugin_options, load_config
from .errors import ConfigError
from .metrics import Metrics, MetricsSink
from .plugins import PluginManager
from .provider import Provider


@attrs.define
class Entry:
    """A provider or agent as ``llmcore providers`` lists it."""

    name: str
    plugin: str
    kind: str
    enabled: bool
    priority: int
    base_url: str | None = None
    models: list[str] = attrs.field(factory=list)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


class Runtime:
    """Config + plugin manager → instances. Built once per ``Client`` or CLI command."""

    def __init__(self, config: Config | None = None, pm: PluginManager | None = None) -> None:
        self.config = config if config is not None else load_config()
        self.pm = pm if pm is not None else PluginManager(disabled=self.config.plugins.disabled)
        self._providers: dict[str, Provider] | None = None
        self._agents: dict[str, Agent] | None = None
        self._metrics: Metrics | None = None

    # -- types offered by plugins ------------------------------------------------------
    @functools.cached_property
    def provider_types(self) -> dict[str, type[Provider]]:
        return self._collect("llmcore_register_providers", Provider)

    @functools.cached_property
    def agent_types(self) -> dict[str, type[Agent]]:
        return self._collect("llmcore_register_agents", Agent)

    @functools.cached_property
    def sink_types(self) -> dict[str, type[MetricsSink]]:
        return self._collect("llmcore_register_metrics_sinks", MetricsSink)

    def _collect(self, hook: str, base: type) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for plugin, cls in self.pm.call_discovery(hook):
            name: str = getattr(cls, "type_name", "") if isinstance(cls, type) else ""
            if not (isinstance(cls, type) and issubclass(cls, base) and name):
                self.pm.mark_failed(
                    plugin,
                    TypeError(f"{hook} returned {cls!r}, not a {base.__name__} with a type_name"),
                )
                continue
            out.setdefault(name, cls)
        return out

    # -- instances ---------------------------------------------------------------------
    def provider_configs(self) -> dict[str, ProviderConfig]:
        if self.config.providers is None:
            return {
                t: ProviderConfig(name=t, plugin=t)
                for t, cls in self.provider_types.items()
                if cls.default_base_url is not None and cls.local
            }
        return self.config.providers

    def agent_configs(self) -> dict[str, AgentConfig]:
        if self.config.agents is None:
            return {t: AgentConfig(name=t, plugin=t) for t in self.agent_types}
        return self.config.agents

    def validate(self) -> None:
        """Check every provider and agent section against the installed plugins."""
        for name in self.provider_configs():
            if self.config.providers is not None:
                check_plugin_options(self.config, "providers", name, self.provider_types)
        for name in self.agent_configs():
            if self.config.agents is not None:
                check_plugin_options(self.config, "agents", name, self.agent_types)

    @property
    def providers(self) -> dict[str, Provider]:
        """Every enabled provider, in routing order (priority, then config order)."""
        if self._providers is None:
            self.validate()
            cfgs = [c for c in self.provider_configs().values() if c.enabled]
            cfgs.sort(key=lambda c: c.priority)
            self._providers = {
                c.name: self.provider_types[c.plugin](c) for c in cfgs
            }
        return self._providers

    def add_provider(self, provider: Provider) -> None:
        self.providers[provider.name] = provider

    @property
    def agents(self) -> dict[str, Agent]:
        if self._agents is None:
            self.validate()
            cfgs = [c for c in self.agent_configs().values() if c.enabled]
            cfgs.sort(key=lambda c: c.priority)
            self._agents = {c.name: self.agent_types[c.plugin](c) for c in cfgs}
        return self._agents

    def agent(self, name: str) -> Agent:
        if name in self.agents:
            return self.agents[name]
        if name in self.agent_types and (self.config.agents or {}).get(name) is None:
            agent = self.agent_types[name](AgentConfig(name=name, plugin=name))
            self.agents[name] = agent
            return agent
        from .config import suggest

        known = sorted(set(self.agents) | set(self.agent_types))
        raise ConfigError(
            f"no agent named {name!r}{suggest(name, known)}",
            hint="available: " + (", ".join(known) or "none; install one, e.g. "
                                  "`llmcore install aider`"),
        )

    @property
    def metrics(self) -> Metrics:
        if self._metrics is None:
            sinks: list[MetricsSink] = []
            mc = self.config.metrics
            if mc.enabled:
                for name in mc.sinks:
                    cls = self.sink_types.get(name)
                    if cls is None:
                        continue
                    try:
                        sinks.append(cls(mc.options.get(name)))
                    except Exception as exc:  # a broken sink never breaks requests
                        import sys

                        print(f"llmcore: metrics sink {name} disabled: {exc}", file=sys.stderr)
            if self.config.routing.budget is not None or self.config.providers:
                from .budgets import spend_sinks  # budgets shared through Redis

                sinks += spend_sinks(self.config)
            self._metrics = Metrics(self.pm.hook, sinks)
        return self._metrics

    def entries(self) -> list[Entry]:
        out = []
        for c in self.provider_configs().values():
            cls = self.provider_types.get(c.plugin)
            out.append(Entry(
                name=c.name, plugin=c.plugin, kind=cls.kind if cls else "api",
                enabled=c.enabled, priority=c.priority,
                base_url=c.base_url or (cls.default_base_url if cls else None), models=c.models,
            ))
        for a in self.agent_configs().values():
            out.append(Entry(name=a.name, plugin=a.plugin, kind="cli", enabled=a.enabled,
                             priority=a.priority, base_url=a.base_url,
                             models=[a.model] if a.model else []))
        return out

    def close(self) -> None:
        for p in (self._providers or {}).values():
            try:
                p.close()
            except Exception:
                pass
        if self._metrics is not None:
            self._metrics.close()
