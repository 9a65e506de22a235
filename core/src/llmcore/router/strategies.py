"""``routing.strategy``: the order in which providers are tried, and the load it needs.

``priority`` keeps the config order; ``round_robin`` rotates it per request; ``cost``
(or ``cost_based``) puts the cheapest first (local = 0, an agent with ``free_tier`` = 0,
unknown prices last); ``api_first`` and ``cli_first`` keep the config order and put API
providers or agents first (both in the chain, see :mod:`.candidates`); ``latency`` the fastest by a
decayed average (never-measured ones first, so they get measured); ``least_busy`` the
one with the fewest requests in flight (or the server's own load report). A provider's
models stay together, in their own order.
"""

from __future__ import annotations

import itertools
import threading
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..pricing import Pricing
    from ..runtime import Runtime
    from .candidates import Candidate


class Balancer:
    """Orders plans and keeps what the strategies measure (latency, requests in flight)."""

    def __init__(self, runtime: Runtime, pricing: Pricing) -> None:
        self.runtime = runtime
        self.pricing = pricing
        self.lock = threading.Lock()  # also guards the failure counts (see .policy)
        self._rr = itertools.count()
        self.latency: dict[str, float] = {}
        self.in_flight: dict[str, int] = {}

    def order(self, groups: list[list[Candidate]], strategy: str) -> list[list[Candidate]]:
        """Order provider groups (a provider's models stay together) by the strategy."""
        if len(groups) < 2 or strategy in ("priority", "api_first", "cli_first"):
            return groups
        if strategy == "round_robin":
            k = next(self._rr) % len(groups)
            return groups[k:] + groups[:k]
        if strategy in ("cost", "cost_based"):
            return sorted(groups, key=lambda g: self.pricing.rank(g[0]))
        if strategy == "latency":
            return sorted(groups, key=lambda g: self.latency.get(g[0].name, 0.0))
        if strategy == "least_busy":
            return sorted(groups, key=self._busy)
        raise ConfigError(f"unknown routing.strategy {strategy!r}", path="routing.strategy")

    def _busy(self, group: list[Candidate]) -> float:
        p = group[0].provider
        load = None
        if p is not None:
            try:
                load = p.load()
            except Exception:
                load = None  # no load report: count our own requests instead
        if isinstance(load, (int, float)):
            return float(load)
        return float(self.in_flight.get(group[0].name, 0))

    def enter(self, cand: Candidate) -> None:
        with self.lock:
            self.in_flight[cand.name] = self.in_flight.get(cand.name, 0) + 1

    def leave(self, cand: Candidate) -> None:
        with self.lock:
            self.in_flight[cand.name] = self.in_flight.get(cand.name, 1) - 1

    def measured(self, cand: Candidate, duration: float) -> None:
        """Fold one successful call's duration into the provider's decayed average.

        The caller holds :attr:`lock`.
        """
        old = self.latency.get(cand.name)
        decay = self.runtime.config.routing.latency_decay
        self.latency[cand.name] = duration if old is None else decay * duration + (1 - decay) * old
