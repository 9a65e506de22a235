"""What things cost: the one place prices become dollars.

Used by the router (:class:`Pricing`: the cost of a response, the order of the ``cost``
strategy), by the model registry (:meth:`llmcore.registry.Registry.cost`) and by the metrics
sinks and reports (:func:`price_event`: events that carry tokens but no cost).

Prices come from the provider's ``cost:`` config section when it has one, else 0 on a
local provider, else the model registry (USD per million tokens). Where a (provider,
model)'s prices come from is looked up once and cached: pricing a response is then a
dictionary lookup and :func:`cost_usd` (a registry lookup costs ~6 µs).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .provider import Provider
    from .registry import Registry
    from .router.candidates import Candidate
    from .runtime import Runtime

#: USD per million (input, output, cached input or None) tokens
_Prices = tuple[float, float, "float | None"]
#: (the provider priced, its prices for one model, or None when they are unknown)
_Source = tuple["Provider", "_Prices | None"]
_MAX_CACHED = 4096  # (provider, model) pairs come from config and servers: few


def cost_usd(
    prices: _Prices, input_tokens: int, output_tokens: int, cached_tokens: int = 0
) -> float:
    """USD for one call at ``prices`` (per million tokens). Cached input tokens are
    counted inside ``input_tokens`` (the OpenAI convention) and charged at the cached rate
    when there is one."""
    pin, pout, pcached = prices
    cached = min(cached_tokens, input_tokens)
    if cached and pcached is not None:
        return ((input_tokens - cached) * pin + cached * pcached + output_tokens * pout) / 1e6
    return (input_tokens * pin + output_tokens * pout) / 1e6


class Unpriced:
    """The ``(model, plugin)`` pairs a registry has no price for, as a metrics sink meets
    them while it prices events that carry tokens but no cost.

    Whether a price is known does not depend on an event's tokens, so a sink asks once
    per model: a model nobody priced (a local one served under its own name, a test stub)
    is the common case, and its lookup was a third of a sink's time per event. Kept for as
    long as the sink uses one registry; cleared when full, so many models keep it small.
    """

    def __init__(self, limit: int = 1024) -> None:
        self.limit = limit
        self._keys: set[tuple[Any, str]] = set()

    def __contains__(self, key: tuple[Any, Any]) -> bool:
        return (key[0], key[1] or "") in self._keys

    def note(self, registry: Any, model: Any, plugin: Any) -> None:
        """An event of ``model`` got no cost: remember it if the registry has no price."""
        try:
            if registry.price(model, plugin or "") is not None:
                return  # priced (the event lacked tokens, or the plugin is local)
        except Exception:
            return
        if len(self._keys) >= self.limit:
            self._keys.clear()
        self._keys.add((model, plugin or ""))


def price_event(registry: Any, d: Any) -> float | None:
    """The cost of a request or agent run that carries tokens but no cost of its own
    (``d``: the event as a dict, or a ``MetricsEvent``, read with ``.get``)."""
    if d.get("kind") not in ("request", "agent_run") or d.get("outcome") != "ok":
        return None
    if d.get("input_tokens") is None and d.get("output_tokens") is None:
        return None
    try:
        cost: float | None = registry.cost(d.get("model"), d.get("plugin") or "", d)
    except Exception:
        return None
    return cost


class Pricing:
    """Prices per (provider, model) for one runtime, looked up once."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._sources: dict[tuple[str, str | None], _Source] = {}

    @functools.cached_property
    def registry(self) -> Registry:
        return self.runtime.registry

    def cost(self, cand: Candidate, model: str | None, usage: Any) -> float | None:
        """USD for ``usage`` on ``cand`` serving ``model``; ``None`` when no price is known.

        Agents report their own cost (or none): they are not priced here.
        """
        p = cand.provider
        if p is None or usage is None:
            return None
        key = (cand.name, model)
        hit = self._sources.get(key)
        if hit is None or hit[0] is not p:  # new, or a provider replaced under that name
            hit = self._source(p, model)
            if len(self._sources) < _MAX_CACHED:
                self._sources[key] = hit
        prices = hit[1]
        if prices is None:
            return None
        return cost_usd(
            prices,
            usage.input_tokens or 0,
            usage.output_tokens or 0,
            getattr(usage, "cached_tokens", None) or 0,
        )

    def _source(self, p: Provider, model: str | None) -> _Source:
        cfg = p.config.cost
        if cfg is not None:
            return p, (cfg.input_per_million, cfg.output_per_million, None)
        if p.local:
            return p, (0.0, 0.0, None)
        try:
            entry = self.registry.info(model, p.type_name)
        except Exception:
            entry = None  # a broken user registry must not fail the request
        if entry is None or not entry.priced:
            return p, None
        return p, (
            entry.input_per_million or 0.0,
            entry.output_per_million or 0.0,
            entry.cached_input_per_million,
        )

    def rank(self, cand: Candidate) -> float:
        """Input + output price per million, for the ``cost`` strategy (unknown = last)."""
        p = cand.provider
        if p is None:  # an agent: free when its config says so, else unknown
            agent = cand.agent
            return 0.0 if agent is not None and agent.config.free_tier else float("inf")
        if p.config.cost is not None:
            return p.config.cost.input_per_million + p.config.cost.output_per_million
        if p.local:
            return 0.0
        try:
            got = self.registry.price(cand.model, p.type_name)
        except Exception:
            got = None
        return float("inf") if got is None else float(got[0] + got[1])
