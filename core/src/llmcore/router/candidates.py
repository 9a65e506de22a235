"""Which candidates may serve a request, and in what order (the *plan*).

A candidate is a (provider, model) pair, or an agent serving plain prompts. The plan
is built from the config order, narrowed by ``provider=``/``model=``, ``routing.prefer``
and the registry's capabilities, then ordered by ``routing.strategy`` (see
:mod:`.strategies`). Cooldowns are *not* applied here: the run reports cooling
candidates as skipped attempts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..gates import gate
from ..registry import model_name, parameter_count
from .agents_as_providers import serving_agents
from .choice import ModelChooser

if TYPE_CHECKING:
    from ..agents import Agent
    from ..pricing import Pricing
    from ..provider import Provider
    from ..runtime import Runtime
    from ..types import ChatRequest
    from .strategies import Balancer


class Candidate:
    """One thing the router may try: a provider with a model, or an agent (``kind='cli'``).

    Iterates as ``(target, model)`` so ``for p, model in router.candidates(...)`` works.
    (A plain class: built several times per request, and cheaper to define than attrs.)
    """

    __slots__ = ("agent", "kind", "model", "name", "provider", "skip")

    def __init__(
        self,
        name: str,
        model: str | None,
        kind: str = "api",
        provider: Provider | None = None,
        agent: Agent | None = None,
    ) -> None:
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
        """The cooldown key of this model of this provider (``name/model``), with the
        model's one name (``llama3.2`` and ``llama3.2:latest`` share a cooldown)."""
        if not self.model:
            return self.name
        return f"{self.name}/{model_name(self.model, self.type_name)}"

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
        self.chooser = ModelChooser()

    def plan(
        self,
        request: ChatRequest,
        provider: str | None,
        fallback: bool | None,
        require: list[str] | None,
        min_context: int | None,
        op: str,
    ) -> list[Candidate]:
        """The candidates for ``op`` on ``request``, in the order they will be tried."""
        routing = self.runtime.config.routing
        providers = self.runtime.providers
        model = request.model
        chat_like = op in ("chat", "stream")
        modes = self.modes(request) if chat_like else ("api",)
        agents = (
            self._agents(implied=routing.strategy in ("api_first", "cli_first"))
            if "cli" in modes
            else {}
        )
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
        groups: list[list[Candidate]] = []
        if provider is None or provider in providers:
            chosen = [providers[provider]] if provider in providers else list(providers.values())
            for p in chosen:
                models = self._models_for(
                    p, model, explicit=provider is not None, chat=op != "embed"
                )
                if require or min_context:
                    models = [
                        m for m in models if self.qualifies(m, p.type_name, require, min_context)
                    ]
                if models:
                    groups.append([Candidate(p.name, m, "api", provider=p) for m in models])
        cli: list[list[Candidate]] = []
        if provider is None or provider in agents:
            for name, agent in agents.items():
                if provider is not None and name != provider:
                    continue
                m = model or agent.config.model
                if (require or min_context) and not self._agent_qualifies(
                    agent, m, require, min_context
                ):
                    continue
                cli.append([Candidate(name, m, "cli", agent=agent)])
        strategy = routing.strategy
        ordered = (groups + cli) if modes[0] == "api" else (cli + groups)
        if strategy in ("cost", "cost_based"):
            # Cheapest first across both modes (a free-tier agent ranks with local servers);
            # the mode order decides between equals.
            ordered = self.balancer.order(ordered, strategy)
        elif modes[0] == "api":
            ordered = self.balancer.order(groups, strategy) + cli
        else:
            ordered = cli + self.balancer.order(groups, strategy)
        plan = [c for g in ordered for c in g]
        if fallback is None:
            fallback = routing.fallback
        plan = plan if fallback else plan[:1]
        # Budgets and images: candidates skipped with a reason, in the attempts.
        gate(self.runtime, self.pricing, request, plan, op)
        return plan

    def modes(self, request: Any) -> tuple[str, ...]:
        """Which kinds of candidate a chat may go to, first kind first.

        ``routing.strategy`` ``api_first`` / ``cli_first`` put both in the chain; else
        ``routing.prefer``: ``api`` (API providers only), ``cli`` (agents, then API
        providers as the fallback), ``auto`` (by the task: a request naming a working
        directory, ``cwd=``, or asking for file edits, ``edit=True``, is an agent's job and
        goes to agents first; any other goes to API providers first, agents after).
        """
        routing = self.runtime.config.routing
        if routing.strategy == "api_first":
            return ("api", "cli")
        if routing.strategy == "cli_first":
            return ("cli", "api")
        if routing.prefer == "api":
            return ("api",)
        if routing.prefer == "cli" or wants_an_agent(request):
            return ("cli", "api")
        return ("api", "cli")

    def _agent_qualifies(
        self, agent: Agent, model: str | None, require: list[str] | None, min_context: int | None
    ) -> bool:
        """``require=`` against the agent's configured ``capabilities`` when it has some,
        else against the registry's facts about its model."""
        caps = agent.config.capabilities
        if caps and not min_context:
            from ..registry import normalize_capability

            have = {normalize_capability(c) for c in caps}
            return {normalize_capability(r) for r in (require or [])} <= have
        return self.qualifies(model, agent.type_name, require, min_context)

    def _models_for(
        self, p: Provider, model: str | None, explicit: bool, chat: bool = True
    ) -> list[str | None]:
        """The provider's models to try: the asked one (if it serves it), else its
        configured ones then ``fallback_models``, else the one the server offers.

        A model the caller named is never swapped for a fallback model: that would answer
        with another model than the one asked for and say so only in the attempts.
        Names compare by their one name (:func:`llmcore.registry.model_name`).
        """
        cfg = p.config
        t = p.type_name
        if model:
            if cfg.models and not explicit:
                want = model_name(model, t)
                served = {model_name(m, t) for m in (*cfg.models, *cfg.fallback_models)}
                if want not in served:
                    return []
            return [model]
        listed = _unique(cfg.models, t)
        if cfg.largest_first and len(listed) > 1:
            listed.sort(key=lambda m: -self._size(p, m))
        first: list[str | None] = list(listed)
        if not first:
            # A chat model is chosen for chats only: embeddings keep the provider's own
            # default (e.g. Ollama's embed_model option).
            first = [self.chooser.choose(p) if chat else None]
        seen = {model_name(m, t) for m in first if m}
        out = first + [m for m in _unique(cfg.fallback_models, t) if model_name(m, t) not in seen]
        return out or [None]

    def _size(self, p: Provider, model: str) -> float:
        """Parameter count (billions) from the name (``70b``, ``270m``) or the server."""
        key = (p.name, model)
        if key not in self._sizes:
            size = parameter_count(model)
            if size is None:
                try:
                    want = model_name(model, p.type_name)
                    for info in p.models():
                        if model_name(info.name, p.type_name) == want and info.parameter_size:
                            size = parameter_count(info.parameter_size)
                except Exception:
                    size = None  # an unreachable server sorts its models last, not crash
            self._sizes[key] = size or 0.0
        return self._sizes[key]

    def qualifies(
        self, model: str | None, type_name: str, require: list[str] | None, min_context: int | None
    ) -> bool:
        return bool(
            self.pricing.registry.qualifies(model, type_name, list(require or []), min_context)
        )

    def _agents(self, implied: bool = False) -> dict[str, Agent]:
        return serving_agents(self.runtime.agents, self._available, implied)


#: ``extra`` keys that are routing hints, never sent to a server: where an agent works and
#: whether it may edit, and the ``on_event`` / ``cancel`` of an agent's run.
ROUTING_KEYS = ("cwd", "edit", "on_event", "cancel")


def wants_an_agent(request: Any) -> bool:
    """Does the request ask for an agent's kind of work (a working directory, file edits)?"""
    extra = getattr(request, "extra", None) or {}
    return bool(extra.get("cwd") or extra.get("edit"))


def _unique(models: list[str], type_name: str) -> list[str]:
    """``models`` without repeats of one model under two names (``x`` and ``x:latest``)."""
    seen: set[str | None] = set()
    out = []
    for m in models:
        key = model_name(m, type_name)
        if key not in seen:
            seen.add(key)
            out.append(m)
    return out
