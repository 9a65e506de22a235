"""``llmcore serve``: OpenAI-, Anthropic- and Responses-compatible endpoints in front of the
router, so any tool (coding agents included) gets failover, cooldowns, keys and metrics.

Layout (one job per module):

* :mod:`.wire` — what every protocol module shares: :class:`WireError`, ids, JSON helpers.
* :mod:`.openai_wire`, :mod:`.anthropic_wire`, :mod:`.responses_wire` — pure translation
  (no I/O) between each protocol's JSON and llmcore's types, requests in, answers, stream
  events and errors out.
* :mod:`.routes` — models as routes: a name a client asks for → the chain tried in order.
* :mod:`.keys` — client keys, requests per minute (shared by the workers), daily budgets.
* :mod:`.app` — the aiohttp application: handlers, limits, health and ``/metrics``.
* :mod:`.server` — the process side: a socket shared by forked workers, signals, shutdown.
"""
