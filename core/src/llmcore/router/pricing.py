"""What a request cost, and how expensive a candidate is for the ``cost`` strategy.

Prices come from the provider's ``cost:`` config section when it has one, else 0 on a
local provider, else the model registry (USD per million tokens). Where a (provider,
model)'s prices come from is looked up once and cached: pricing a response is then a
dictionary lookup and Registry.cost's arithmetic (a registry lookup costs ~6 µs).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..provider import Provider
    from ..registry import Registry
    from ..runtime import Runtime
    from .candidates import Candidate

#: USD per million (input, output, cached input or None) tokens
_Prices = tuple[float, float, "float | None"]
#: (the provider priced, its prices for one model, or None when they are unknown)
_Source = tuple["Provider", "_Prices | None"]
_MAX_CACHED = 4096  # (provider, model) pairs come from config and servers: few


class Pricing:
    """Prices per (provider, model) for one runtime, looked up once."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._sources: dict[tuple[str, str | None], _Source] = {}

    @functools.cached_property
    def registry(self) -> Registry:
        from ..registry import get_registry

        return get_registry(self.runtime.config)

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
        # Registry.cost's arithmetic on the cached prices (its lookup costs ~6 µs a call)
        pin, pout, pcached = prices
        tin = usage.input_tokens or 0
        tout = usage.output_tokens or 0
        cached = min(getattr(usage, "cached_tokens", None) or 0, tin)
        if cached and pcached is not None:  # cached input tokens have their own rate
            return ((tin - cached) * pin + cached * pcached + tout * pout) / 1e6
        return (tin * pin + tout * pout) / 1e6

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
        return p, (entry.input_per_million or 0.0, entry.output_per_million or 0.0,
                   entry.cached_input_per_million)

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
