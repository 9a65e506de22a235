"""Which candidates may serve a request, and in what order (the *plan*).

A candidate is a (provider, model) pair, or an agent serving plain prompts. The plan
is built from the config order, narrowed by ``provider=``/``model=``, ``routing.prefer``
and the registry's capabilities, then ordered by ``routing.strategy`` (see
:mod:`.strategies`). Cooldowns are *not* applied here: the run reports cooling
candidates as skipped attempts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..gates import gate
from .agents_as_providers import serving_agents

if TYPE_CHECKING:
    from ..agents import Agent
    from ..provider import Provider
    from ..runtime import Runtime
    from ..types import ChatRequest
    from .pricing import Pricing
    from .strategies import Balancer

#: A parameter count in a model name (``70b``, ``270m``, ``1.5B``); compiled on first use.
_PARAMS = r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)\s*([bBmM])(?![A-Za-z])"


class Candidate:
    """One thing the router may try: a provider with a model, or an agent (``kind='cli'``).

    Iterates as ``(target, model)`` so ``for p, model in router.candidates(...)`` works.
    (A plain class: built several times per request, and cheaper to define than attrs.)
    """

    __slots__ = ("agent", "kind", "model", "name", "provider", "skip")

    def __init__(self, name: str, model: str | None, kind: str = "api",
                 provider: Provider | None = None, agent: Agent | None = None) -> None:
        self.name = name
        self.model = model
        self.kind = kind
        self.provider = provider
        self.agent = agent
        #: Set by llmcore.gates: (error type, message, hint, until or None) to skip it.
        self.skip: tuple[str, str, str, float | None] | None = None

    def __repr__(self) -> str:
        return f"Candidate({self.name!r}, {self.model!r}, kind={self.kind!r})"

    @property
    def target(self) -> Any:
        return self.provider if self.provider is not None else self.agent

    @property
    def type_name(self) -> str:
        return str(getattr(self.target, "type_name", "") or "")

    @property
    def model_key(self) -> str:
        """The cooldown key of this model of this provider (``name/model``)."""
        return f"{self.name}/{self.model}" if self.model else self.name

    def __iter__(self) -> Iterator[Any]:
        return iter((self.target, self.model))


class Planner:
    """Builds plans for one runtime; remembers model sizes and which agents are installed."""

    def __init__(self, runtime: Runtime, balancer: Balancer, pricing: Pricing) -> None:
        self.runtime = runtime
        self.balancer = balancer
        self.pricing = pricing
        self._available: dict[str, bool] = {}
        self._sizes: dict[tuple[str, str], float] = {}

    def plan(self, request: ChatRequest, provider: str | None, fallback: bool | None,
             require: list[str] | None, min_context: int | None,
             op: str) -> list[Candidate]:
        """The candidates for ``op`` on ``request``, in the order they will be tried."""
        routing = self.runtime.config.routing
        providers = self.runtime.providers
        model = request.model
        agents = self._agents() if routing.prefer != "api" and op in ("chat", "stream") else {}
        if model and provider is None and "/" in model:
            head, _, rest = model.partition("/")
            if head in providers or head in agents:  # "name/model" picks the provider
                provider, model = head, rest
        if provider is not None and provider not in providers and provider not in agents:
            from ..config import suggest

            known = [*providers, *agents]
            raise ConfigError(
                f"no enabled provider named {provider!r}{suggest(provider, known)}",
                hint="enabled: " + (", ".join(known) or "none"),
            )
        plan: list[Candidate] = []
        if routing.prefer != "cli" or provider in providers or op not in ("chat", "stream"):
            chosen = [providers[provider]] if provider in providers else (
                [] if provider is not None else list(providers.values()))
            groups = []
            for p in chosen:
                models = self._models_for(p, model, explicit=provider is not None)
                if require or min_context:
                    models = [m for m in models
                              if self.qualifies(m, p.type_name, require, min_context)]
                if models:
                    groups.append([Candidate(p.name, m, "api", provider=p) for m in models])
            plan = [c for g in self.balancer.order(groups, routing.strategy) for c in g]
        if provider is None or provider in agents:
            for name, agent in agents.items():
                if provider is not None and name != provider:
                    continue
                m = model or agent.config.model
                if (require or min_context) and not self.qualifies(
                        m, agent.type_name, require, min_context):
                    continue
                plan.append(Candidate(name, m, "cli", agent=agent))
        if fallback is None:
            fallback = routing.fallback
        plan = plan if fallback else plan[:1]
        # Budgets and images: candidates skipped with a reason, in the attempts.
        gate(self.runtime, self.pricing, request, plan, op)
        return plan

    def _models_for(self, p: Provider, model: str | None, explicit: bool) -> list[str | None]:
        """The provider's models to try: the asked one (if it serves it), then fallbacks."""
        cfg = p.config
        if model:
            if cfg.models and not explicit and model not in cfg.models \
                    and model not in cfg.fallback_models:
                return []
            first: list[str | None] = [model]
        else:
            listed = list(cfg.models)
            if cfg.largest_first and len(listed) > 1:
                listed.sort(key=lambda m: -self._size(p, m))
            first = list(listed)
        out = first + [m for m in cfg.fallback_models if m not in first]
        return out or [None]

    def _size(self, p: Provider, model: str) -> float:
        """Parameter count (billions) from the name (``70b``, ``270m``) or the server."""
        key = (p.name, model)
        if key not in self._sizes:
            size = parameter_count(model)
            if size is None:
                try:
                    for info in p.models():
                        if info.name == model and info.parameter_size:
                            size = parameter_count(info.parameter_size)
                except Exception:
                    size = None  # an unreachable server sorts its models last, not crash
            self._sizes[key] = size or 0.0
        return self._sizes[key]

    def qualifies(self, model: str | None, type_name: str, require: list[str] | None,
                  min_context: int | None) -> bool:
        return bool(self.pricing.registry.qualifies(model, type_name, list(require or []),
                                                    min_context))

    def _agents(self) -> dict[str, Agent]:
        return serving_agents(self.runtime.agents, self._available)


def parameter_count(text: str | None) -> float | None:
    """Billions of parameters named in ``text``: ``llama3:70b`` → 70, ``gemma-3-270m`` → 0.27."""
    if not text:
        return None
    found = re.findall(_PARAMS, text)  # re caches the compiled pattern
    if not found:
        return None
    value, unit = found[-1]
    return float(value) / (1000.0 if unit in "mM" else 1.0)
