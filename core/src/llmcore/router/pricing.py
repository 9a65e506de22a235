"""What a request cost, and how expensive a candidate is for the ``cost`` strategy.

Prices come from the provider's ``cost:`` config section when it has one, else 0 on a
local provider, else the model registry (USD per million tokens). The decision of
*where* a (provider, model)'s price comes from is made once and cached, so pricing a
response is a dictionary lookup and a little arithmetic.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..provider import Provider
    from ..registry import Registry
    from ..runtime import Runtime
    from .candidates import Candidate

#: "Ask the registry" (it knows a price, maybe with a cached-input rate).
_REGISTRY = "registry"
#: Where one (provider, model)'s price comes from: fixed prices, the registry, or unknown.
_Source = tuple[float, float] | str | None
_MAX_CACHED = 4096  # (provider, model) pairs come from config and servers: few


class Pricing:
    """Prices per (provider, model) for one runtime, looked up once."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._sources: dict[tuple[str, str | None], tuple[Provider, _Source]] = {}

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
        if hit is None or hit[0] is not p:  # a provider replaced under the same name
            hit = (p, self._source(p, model))
            if len(self._sources) < _MAX_CACHED:
                self._sources[key] = hit
        source = hit[1]
        if source is None:
            return None
        prices = source if isinstance(source, tuple) else None
        return self.registry.cost(model, p.type_name, usage, local=p.local, prices=prices)

    def _source(self, p: Provider, model: str | None) -> _Source:
        cfg = p.config.cost
        if cfg is not None:
            return (cfg.input_per_million, cfg.output_per_million)
        if p.local:
            return (0.0, 0.0)
        try:
            known = self.registry.price(model, p.type_name, local=False)
        except Exception:
            known = None  # a broken user registry must not fail the request
        return _REGISTRY if known is not None else None

    def rank(self, cand: Candidate) -> float:
        """Input + output price per million, for the ``cost`` strategy (unknown = last)."""
        p = cand.provider
        if p is None:
            return float("inf")
        if p.config.cost is not None:
            return p.config.cost.input_per_million + p.config.cost.output_per_million
        if p.local:
            return 0.0
        try:
            got = self.registry.price(cand.model, p.type_name)
        except Exception:
            got = None
        return float("inf") if got is None else float(got[0] + got[1])
