"""Choose candidates for a request, retry what can succeed, fail over, and cool down.

One request goes through a *plan*: an ordered list of candidates, each a (provider, model)
pair or an agent serving plain prompts. For each candidate, in order:

1. when it is cooling down (shared :mod:`llmcore.state`), it is recorded as a skipped
   attempt and no network call is made;
2. it is called, and retried (tenacity, ``providers.X.retry``) while the error can go away
   on retry: connection reset, timeout, 429, 500/502/503/504. A refused connection, a 4xx
   or an unreadable answer moves to the next candidate at once;
3. a 429 cools the provider (or that model of it) for ``Retry-After`` or
   ``routing.cooldown.rate_limit_seconds``; ``failure_threshold`` failed calls in a row
   cool the provider for ``failure_seconds``.

The modules, each with one job:

- :mod:`.api`: :class:`Router`, what the client calls;
- :mod:`.candidates`: the plan (which candidates, in which order) and model sizes;
- :mod:`.strategies`: ``routing.strategy`` and the load it measures;
- :mod:`llmcore.pricing` (shared with the sinks and reports): the cost of a response,
  and the price order for ``cost``;
- :mod:`.policy`: retry waits and when to cool down; :mod:`.failures`: what an error means;
- :mod:`.run`: one request's attempts and every decision about them, shared by
- :mod:`.calls` and :mod:`.streams`: the sync and async loops, which only call and await;
- :mod:`.agents_as_providers`: agents answering plain prompts.
"""

from __future__ import annotations

from ..registry import parameter_count
from .agents_as_providers import prompt_text
from .api import Router
from .candidates import Candidate
from .run import describe_attempts
from .streams import AsyncRoutedStream, RoutedStream

__all__ = [
    "AsyncRoutedStream",
    "Candidate",
    "RoutedStream",
    "Router",
    "describe_attempts",
    "parameter_count",
    "prompt_text",
]
