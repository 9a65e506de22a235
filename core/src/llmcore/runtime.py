"""Ties config and plugins together: which provider, agent and sink instances exist."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import attrs

from .agents import Agent
from .config import (
    AgentConfig,
    Config,
    ProviderConfig,
    check_api_keys,
    check_plugin_options,
    check_sinks,
    load_config,
)
from .errors import ConfigError
from .hooks import Hooks
from .metrics import Metrics, MetricsSink
from .plugins import PluginManager
from .provider import Provider

if TYPE_CHECKING:
    from .registry import Registry

#: With no config, local servers are tried in this order: the ones most people run first.
#: Types not listed follow, in the order their plugins were found. A server that is not
#: running refuses the connection at once, so trying it costs milliseconds.
ZERO_CONFIG_ORDER = ("ollama", "lmstudio", "llamacpp", "vllm")


def _zero_config_rank(type_name: str) -> int:
    if type_name in ZERO_CONFIG_ORDER:
        return ZERO_CONFIG_ORDER.index(type_name)
    return len(ZERO_CONFIG_ORDER)


def zero_config_url(type_name: str) -> str | None:
    """A URL the environment gives a zero-config provider: ``LLMCORE_<TYPE>_URL``, or
    Ollama's own ``OLLAMA_HOST`` (``host``, ``host:port`` or a URL); ``None`` keeps the
    plugin's default."""
    import os

    url = os.environ.get(f"LLMCORE_{type_name.upper().replace('-', '_')}_URL")
    if url:
        return url
    host = os.environ.get("OLLAMA_HOST") if type_name == "ollama" else None
    if not host:
        return None
    if "://" not in host:
        host = f"http://{host}"
    scheme, _, rest = host.partition("://")
    if ":" not in rest.split("/", 1)[0]:
        rest = rest.split("/", 1)[0] + ":11434"
    return f"{scheme}://{rest.rstrip('/')}"


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

    @functools.cached_property
    def registry(self) -> Registry:
        """The model registry of this config (facts, context sizes, prices)."""
        from .registry import get_registry

        return get_registry(self.config)

    @property
    def hooks(self) -> Hooks:
        """The typed hook façade of this runtime's plugin manager."""
        return self.pm.hooks

    # -- types offered by plugins ------------------------------------------------------
    @functools.cached_property
    def provider_types(self) -> dict[str, type[Provider]]:
        return self._collect(
            "llmcore_register_providers", self.hooks.register_providers(), Provider
        )

    @functools.cached_property
    def agent_types(self) -> dict[str, type[Agent]]:
        return self._collect("llmcore_register_agents", self.hooks.register_agents(), Agent)

    @functools.cached_property
    def sink_types(self) -> dict[str, type[MetricsSink]]:
        return self._collect(
            "llmcore_register_metrics_sinks", self.hooks.register_metrics_sinks(), MetricsSink
        )

    def _collect(self, hook: str, offered: list[tuple[str, Any]], base: type) -> dict[str, Any]:
        out: dict[str, Any] = {}
        owner: dict[str, str] = {}
        for plugin, cls in offered:
            name: str = getattr(cls, "type_name", "") if isinstance(cls, type) else ""
            if not (isinstance(cls, type) and issubclass(cls, base) and name):
                self.pm.mark_failed(
                    plugin,
                    TypeError(f"{hook} returned {cls!r}, not a {base.__name__} with a type_name"),
                )
                continue
            if name in owner and owner[name] != plugin:
                winner, loser = sorted((owner[name], plugin), key=self.pm.rank)
                kind = hook.removeprefix("llmcore_register_").removesuffix("s")
                self.pm.record_conflict(kind.replace("metrics_sink", "sink"), name, winner, loser)
                if winner == plugin:  # same place in the table, the winner's class
                    out[name], owner[name] = cls, plugin
                continue
            owner.setdefault(name, plugin)
            out.setdefault(name, cls)
        return out

    # -- instances ---------------------------------------------------------------------
    def provider_configs(self) -> dict[str, ProviderConfig]:
        """The configured providers; with no ``providers:`` section, every installed local
        server type at its default URL, in :data:`ZERO_CONFIG_ORDER`."""
        if self.config.providers is None:
            types = [
                (t, cls)
                for t, cls in self.provider_types.items()
                if cls.default_base_url is not None and cls.local
            ]
            types.sort(key=lambda tc: _zero_config_rank(tc[0]))
            return {
                t: ProviderConfig(
                    name=t, plugin=t, priority=_zero_config_rank(t), base_url=zero_config_url(t)
                )
                for t, _ in types
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
                self._check_not_disabled("providers", name, self.provider_types)
                check_plugin_options(self.config, "providers", name, self.provider_types)
        for name in self.agent_configs():
            if self.config.agents is not None:
                self._check_not_disabled("agents", name, self.agent_types)
                check_plugin_options(self.config, "agents", name, self.agent_types)
        check_api_keys(self.config, self.provider_types)
        if self.config.metrics.enabled:
            check_sinks(self.config, self.sink_types)

    def _check_not_disabled(self, section: str, name: str, types: dict[str, Any]) -> None:
        """A section naming the type of an installed but disabled plugin says so."""
        body: Any = self.config.providers if section == "providers" else self.config.agents
        plugin = body[name].plugin
        if plugin in types:
            return
        hint = self.disabled_hint(plugin)
        if hint is not None:
            raise self.config.error(
                (section, name, "plugin"), f"plugin {plugin!r} is installed but disabled", hint=hint
            )

    def disabled_hint(self, type_name: str) -> str | None:
        """Where the plugin offering ``type_name`` is disabled, or ``None`` if it is not."""
        record = self.pm.disabled_record(type_name)
        if record is None:
            return None
        if record.disabled_by == "plugins.disabled":
            where = self.config.source or "the configuration"
            return (
                f"{record.name} is listed in plugins.disabled in {where}; remove it there to use it"
            )
        return (
            f"{record.name} is left out by the LLMCORE_PLUGINS environment variable; "
            "add it there or unset the variable"
        )

    @property
    def providers(self) -> dict[str, Provider]:
        """Every enabled provider, in routing order (priority, then config order)."""
        if self._providers is None:
            self.validate()
            self.load_model_facts()
            cfgs = [c for c in self.provider_configs().values() if c.enabled]
            cfgs.sort(key=lambda c: c.priority)
            self._providers = {c.name: self.provider_types[c.plugin](c) for c in cfgs}
        return self._providers

    def built_providers(self) -> list[Provider]:
        """The provider instances made so far (none are made to answer this)."""
        return list((self._providers or {}).values())

    def load_model_facts(self) -> None:
        """Hand the facts plugins offer (``llmcore_register_model_facts``) to the registry."""
        from .registry import get_registry

        registry = get_registry(self.config)
        for plugin, doc in self.hooks.register_model_facts():
            try:
                registry.add_facts(plugin, doc)
            except Exception as exc:  # a plugin's bad data never breaks requests
                self.pm.mark_failed(plugin, exc)

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
            hint="available: "
            + (", ".join(known) or "none; install one, e.g. `llmcore install aider`"),
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
            self._metrics = Metrics(self.hooks, sinks)
        return self._metrics

    def entries(self) -> list[Entry]:
        out = []
        for c in self.provider_configs().values():
            cls = self.provider_types.get(c.plugin)
            out.append(
                Entry(
                    name=c.name,
                    plugin=c.plugin,
                    kind=cls.kind if cls else "api",
                    enabled=c.enabled,
                    priority=c.priority,
                    base_url=c.base_url or (cls.default_base_url if cls else None),
                    models=c.models,
                )
            )
        for a in self.agent_configs().values():
            out.append(
                Entry(
                    name=a.name,
                    plugin=a.plugin,
                    kind="cli",
                    enabled=a.enabled,
                    priority=a.priority,
                    base_url=a.base_url,
                    models=[a.model] if a.model else [],
                )
            )
        return out

    def close(self) -> None:
        """Close every provider this runtime built or was given, and the metrics sinks."""
        for p in self.built_providers():
            try:
                p.close()
            except Exception:  # one provider failing to close must not keep the rest open
                pass
        for a in (self._agents or {}).values():
            try:
                a.close()  # e.g. an `opencode serve` started for this client
            except Exception:
                pass
        if self._metrics is not None:
            self._metrics.close()
