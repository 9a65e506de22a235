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

The decisions live in :class:`_Run` and a few helpers; :class:`Router` only drives the
loop, once for sync and once for async code, so both behave the same.
"""

from __future__ import annotations

import errno
import functools
import itertools
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from .errors import (
    AgentError,
    AllProvidersFailed,
    AuthenticationError,
    ConfigError,
    LLMCoreError,
    ModelNotFoundError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    ResponseError,
    StreamInterrupted,
)
from .hooks import AgentCall, GenerationCall
from .metrics import MetricsEvent
from .secrets import redact
from .types import (
    AgentTask,
    Attempt,
    ChatRequest,
    ChatResponse,
    EmbeddingResponse,
    ModelInfo,
    StreamChunk,
    Usage,
)

if TYPE_CHECKING:
    from .agents import Agent
    from .config import RetryConfig
    from .provider import Provider
    from .runtime import Runtime
    from .state import CooldownStore

#: Failures that say "this server is in trouble" and count towards ``failure_threshold``.
_SERVER_TROUBLE = (ProviderConnectionError, ProviderTimeoutError, ResponseError)
_T = TypeVar("_T")
_PARAMS = re.compile(r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)\s*([bBmM])(?![A-Za-z])")


class _Unsupported(Exception):
    """The candidate cannot do this operation (NotImplementedError): skip it silently."""


class Candidate:
    """One thing the router may try: a provider with a model, or an agent (``kind='cli'``).

    Iterates as ``(target, model)`` so ``for p, model in router.candidates(...)`` works.
    (A plain class: built several times per request, and cheaper to define than attrs.)
    """

    __slots__ = ("agent", "kind", "model", "name", "provider")

    def __init__(self, name: str, model: str | None, kind: str = "api",
                 provider: Provider | None = None, agent: Agent | None = None) -> None:
        self.name = name
        self.model = model
        self.kind = kind
        self.provider = provider
        self.agent = agent

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
        return f"{self.name}/{self.model}" if self.model else self.name

    def __iter__(self) -> Iterator[Any]:
        return iter((self.target, self.model))


class _Run:
    """The state of one request: its plan, its attempts, and every decision about them."""

    __slots__ = ("attempts", "cooled", "index", "op", "plan", "request", "rid", "router",
                 "start", "tries")

    def __init__(self, router: Router, op: str, request: Any, plan: list[Candidate]) -> None:
        self.router = router
        self.op = op
        self.request = request
        self.plan = plan
        self.rid = os.urandom(6).hex()
        self.start = time.monotonic()
        self.attempts: list[Attempt] = []
        self.index = 0  # position in the plan of the candidate being tried
        self.tries = 0  # calls made to the current candidate
        self.cooled: set[str] = set()  # keys this run has just cooled down

    # -- per candidate ------------------------------------------------------------------
    def begin(self, index: int) -> Candidate | None:
        """Start on ``plan[index]``; ``None`` (and a skipped attempt) when it is cooling."""
        self.index, self.tries = index, 0
        cand = self.plan[index]
        cool = self.router._cooling(cand)
        if cool is None:
            return cand
        until, reason = cool
        left = max(0.0, until - time.time())
        a = Attempt(
            provider=cand.name, model=cand.model, ok=False, error_type="CoolingDown",
            message=f"cooling down for {left:.1f}s more ({reason})" if reason
            else f"cooling down for {left:.1f}s more",
            hint=f"back at {_clock(until)}; another provider, or wait", skipped=True,
            cooldown_until=until,
        )
        self._record(a, cand)
        return None

    def request_for(self, cand: Candidate) -> Any:
        if self.op == "embed" or cand.kind == "cli":
            return self.request
        if self.request.model == cand.model and (self.op != "stream" or self.request.stream):
            return self.request
        return attrs.evolve(self.request, model=cand.model, stream=self.op == "stream")

    def has_next(self) -> bool:
        return self.index + 1 < len(self.plan)

    # -- outcomes -----------------------------------------------------------------------
    def failed_try(self, cand: Candidate, exc: BaseException, t0: float) -> ProviderError:
        """Record one failed call; return the error to retry on or fail over from.

        Errors that are not about the provider (a guard hook refusing, bad config) are
        raised as they are: failing over would not help.
        """
        err = _as_provider_error(cand, exc)
        if err is None:
            raise exc
        duration = time.monotonic() - t0
        a = Attempt(
            provider=cand.name, model=cand.model, ok=False, error_type=type(err).__name__,
            status=err.status, message=err.message, hint=_hint(cand, err),
            duration_s=duration, retry=self.tries - 1,
        )
        self.router._note_failure(self, cand, err, a)
        self._record(a, cand)
        return err

    def should_retry(self, cand: Candidate, exc: BaseException) -> bool:
        """May the same candidate be called again after ``exc``?"""
        if not isinstance(exc, ProviderError) or isinstance(exc, StreamInterrupted):
            return False
        if cand.kind == "cli" or self.tries >= _retry_cfg(cand).max_attempts:
            return False  # agents are never retried: a run can take minutes
        if not exc.retryable or _refused(exc):
            return False  # a refused connection will not be accepted 0.25 s later
        if cand.name in self.cooled or cand.model_key in self.cooled:
            return False
        if isinstance(exc, RateLimitError):
            cap = _retry_cfg(cand).max_retry_after
            if exc.retry_after is not None and exc.retry_after > cap:
                return False
            # Waiting out a rate limit only makes sense when nobody else can answer.
            return not self._later_candidates()
        return True

    def _later_candidates(self) -> bool:
        active = self.router._active()
        for c in self.plan[self.index + 1:]:
            if c.name not in active and c.model_key not in active:
                return True
        return False

    def give_up(self, cand: Candidate, exc: ProviderError) -> None:
        """The candidate is done for this request: cool it down if due, note the failover."""
        self.router._after_candidate(self, cand, exc)
        if self.has_next():
            self.router._emit(MetricsEvent(
                kind="failover", provider=cand.name, plugin=cand.type_name, model=cand.model,
                operation=self.op, outcome=type(exc).__name__, status=exc.status,
                request_id=self.rid, message=f"to {self.plan[self.index + 1].name}",
            ))

    def succeeded(self, cand: Candidate, t0: float, model: str | None) -> Attempt:
        a = Attempt(provider=cand.name, model=model or cand.model, ok=True,
                    duration_s=time.monotonic() - t0, retry=self.tries - 1)
        self.router._note_success(cand, a.duration_s)
        self._record(a, cand)
        return a

    def finish(self, resp: ChatResponse, cand: Candidate, t0: float) -> ChatResponse:
        self.succeeded(cand, t0, resp.model)
        resp.provider = resp.provider or cand.name
        resp.attempts = self.attempts
        resp.latency_s = time.monotonic() - self.start
        if not self.router.listening:
            return resp
        u = resp.usage or Usage()
        self.router._emit(MetricsEvent(
            kind="request", provider=cand.name, plugin=cand.type_name, model=resp.model,
            operation=self.op, input_tokens=u.input_tokens, output_tokens=u.output_tokens,
            cost_usd=resp.cost_usd, latency_s=resp.latency_s, ttft_s=resp.ttft_s,
            attempts=len(self.attempts), request_id=self.rid,
        ))
        return resp

    def interrupted(self, cand: Candidate, exc: BaseException, t0: float,
                    parts: list[str]) -> StreamInterrupted:
        """A stream broke after the caller got text: never restart it elsewhere."""
        err = _as_provider_error(cand, exc)
        if err is None:
            raise exc
        self.failed_try(cand, err, t0)
        self.router._emit(MetricsEvent(
            kind="request", provider=cand.name, plugin=cand.type_name, model=cand.model,
            operation=self.op, outcome="StreamInterrupted", attempts=len(self.attempts),
            latency_s=time.monotonic() - self.start, request_id=self.rid,
        ))
        out = StreamInterrupted(
            f"stream from {cand.name} broke after {len(parts)} chunk(s): {err.message}",
            partial="".join(parts), provider=cand.name, model=cand.model, status=err.status,
            hint="the partial answer is in .partial; ask again to get a whole one",
        )
        out.__cause__ = exc
        return out

    def all_failed(self) -> AllProvidersFailed:
        self.router._emit(MetricsEvent(
            kind="request", outcome="AllProvidersFailed", operation=self.op,
            latency_s=time.monotonic() - self.start, attempts=len(self.attempts),
            request_id=self.rid,
        ))
        return AllProvidersFailed(self.attempts, message=describe_attempts(self.attempts))

    def _record(self, a: Attempt, cand: Candidate) -> None:
        self.attempts.append(a)
        if not self.router.listening:
            return
        self.router._emit(MetricsEvent(
            kind="attempt", provider=a.provider, plugin=cand.type_name, model=a.model,
            operation=self.op,
            outcome="ok" if a.ok else ("skipped" if a.skipped else (a.error_type or "error")),
            status=a.status, latency_s=a.duration_s, attempt=len(self.attempts),
            request_id=self.rid, message=a.message or None, cooldown_until=a.cooldown_until,
        ))


class RoutedStream(Iterator[StreamChunk]):
    """The chunks of a routed stream; ``attempts`` lists the tries so far (as in
    ``ChatResponse.attempts``)."""

    def __init__(self, gen: Iterator[StreamChunk], attempts: list[Attempt]) -> None:
        self._gen = gen
        self.attempts = attempts

    def __next__(self) -> StreamChunk:
        return next(self._gen)

    def close(self) -> None:
        close = getattr(self._gen, "close", None)
        if close is not None:
            close()


class AsyncRoutedStream(AsyncIterator[StreamChunk]):
    """The async :class:`RoutedStream`."""

    def __init__(self, gen: AsyncIterator[StreamChunk], attempts: list[Attempt]) -> None:
        self._gen = gen
        self.attempts = attempts

    async def __anext__(self) -> StreamChunk:
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        aclose = getattr(self._gen, "aclose", None)
        if aclose is not None:
            await aclose()


class Router:
    """Routes requests over the runtime's providers (and agents serving prompts)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._lock = threading.Lock()
        self._rr = itertools.count()
        self._latency: dict[str, float] = {}
        self._in_flight: dict[str, int] = {}
        self._failures: dict[str, int] = {}
        self._store: CooldownStore | None = None
        self._store_spec: str | None = None
        self._available: dict[str, bool] = {}
        self._sizes: dict[tuple[str, str], float] = {}

    # -- shared state -----------------------------------------------------------------
    @property
    def store(self) -> CooldownStore:
        """The cooldown store ``routing.state`` names (opened on first use)."""
        spec = self.runtime.config.routing.state
        if self._store is None or self._store_spec != spec:
            from .state import open_store

            self._store = open_store(spec)
            self._store_spec = spec
        return self._store

    def _active(self) -> Mapping[str, Any]:
        return self.store.active()

    def _cooling(self, cand: Candidate) -> tuple[float, str] | None:
        active = self._active()
        if not active:
            return None
        found = [c for k, c in active.items() if k in (cand.name, cand.model_key)]
        if not found:
            return None
        last = max(found, key=lambda c: c.until)
        return last.until, last.reason

    def _cool(self, run: _Run, cand: Candidate, key: str, seconds: float, reason: str,
              a: Attempt) -> None:
        from .state import Cooldown

        until = time.time() + seconds
        self.store.put(Cooldown(key, until, reason))
        run.cooled.add(key)
        a.cooldown_until = until
        self._emit(MetricsEvent(
            kind="cooldown", provider=cand.name, plugin=cand.type_name, model=cand.model,
            operation=run.op, outcome=reason, status=a.status, cooldown_until=until,
            duration_s=seconds, request_id=run.rid, message=f"{key} until {_clock(until)}",
        ))

    def _note_failure(self, run: _Run, cand: Candidate, err: ProviderError, a: Attempt) -> None:
        """After each failed call: count server trouble; cool down at the threshold."""
        if not isinstance(err, _SERVER_TROUBLE):
            return
        cfg = self.runtime.config.routing.cooldown
        with self._lock:
            n = self._failures.get(cand.name, 0) + 1
            self._failures[cand.name] = 0 if n >= cfg.failure_threshold else n
        if n >= cfg.failure_threshold and cfg.failure_seconds > 0:
            self._cool(run, cand, cand.name, cfg.failure_seconds,
                       f"{n} failures in a row", a)

    def _after_candidate(self, run: _Run, cand: Candidate, err: ProviderError) -> None:
        """When a candidate is given up on: a rate limit cools it down."""
        if not isinstance(err, RateLimitError):
            return
        cfg = self.runtime.config.routing.cooldown
        seconds = err.retry_after if err.retry_after is not None else cfg.rate_limit_seconds
        if seconds <= 0:
            return
        scope = getattr(cfg, "rate_limit_scope", "model")
        key = cand.model_key if scope == "model" else cand.name
        self._cool(run, cand, key, seconds, "rate limited", run.attempts[-1])

    def _note_success(self, cand: Candidate, duration: float) -> None:
        decay = self.runtime.config.routing.latency_decay
        with self._lock:
            if self._failures.get(cand.name):
                self._failures[cand.name] = 0
            old = self._latency.get(cand.name)
            self._latency[cand.name] = (duration if old is None
                                        else decay * duration + (1 - decay) * old)

    def _enter(self, cand: Candidate) -> None:
        with self._lock:
            self._in_flight[cand.name] = self._in_flight.get(cand.name, 0) + 1

    def _leave(self, cand: Candidate) -> None:
        with self._lock:
            self._in_flight[cand.name] = self._in_flight.get(cand.name, 1) - 1

    @property
    def listening(self) -> bool:
        """Does anyone receive metrics events? If not, the hot path does not build them."""
        m = self.runtime.metrics
        return bool(m.sinks) or bool(getattr(m, "_has_hook_impls", True))

    def _emit(self, event: MetricsEvent) -> None:
        self.runtime.metrics.emit(event)

    def cooldowns(self) -> dict[str, tuple[float, str]]:
        """The running cooldowns: key → (until as epoch seconds, reason)."""
        return {k: (c.until, c.reason) for k, c in self._active().items()}

    def clear_cooldowns(self, key: str | None = None) -> None:
        self.store.clear(key)

    # -- choosing ---------------------------------------------------------------------
    def candidates(self, request: ChatRequest, provider: str | None = None,
                   fallback: bool | None = None, *, require: list[str] | None = None,
                   min_context: int | None = None,
                   include_cooling: bool = False) -> list[Candidate]:
        """The plan for ``request`` in the order it would be tried.

        Cooling candidates are left out unless ``include_cooling`` (the router itself
        keeps them, to report them as skipped).
        """
        plan = self._plan(request, provider, fallback, require, min_context, "chat")
        if include_cooling:
            return plan
        return [c for c in plan if self._cooling(c) is None]

    def _plan(self, request: ChatRequest, provider: str | None, fallback: bool | None,
              require: list[str] | None, min_context: int | None,
              op: str) -> list[Candidate]:
        routing = self.runtime.config.routing
        providers = self.runtime.providers
        model = request.model
        agents = self._serving_agents() if routing.prefer != "api" and op in (
            "chat", "stream") else {}
        if model and provider is None and "/" in model:
            head, _, rest = model.partition("/")
            if head in providers or head in agents:
                provider, model = head, rest
        if provider is not None and provider not in providers and provider not in agents:
            from .config import suggest

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
                              if self._qualifies(m, p.type_name, require, min_context)]
                if models:
                    groups.append([Candidate(p.name, m, "api", provider=p) for m in models])
            plan = [c for g in self._order(groups, routing.strategy) for c in g]
        if provider is None or provider in agents:
            for name, agent in agents.items():
                if provider is not None and name != provider:
                    continue
                m = model or agent.config.model
                if (require or min_context) and not self._qualifies(
                        m, agent.type_name, require, min_context):
                    continue
                plan.append(Candidate(name, m, "cli", agent=agent))
        if fallback is None:
            fallback = routing.fallback
        return plan if fallback else plan[:1]

    def _models_for(self, p: Provider, model: str | None, explicit: bool) -> list[str | None]:
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

    @functools.cached_property
    def _registry(self) -> Any:
        from .registry import get_registry

        return get_registry(self.runtime.config)

    def _qualifies(self, model: str | None, type_name: str, require: list[str] | None,
                   min_context: int | None) -> bool:
        return bool(self._registry.qualifies(model, type_name, list(require or []),
                                             min_context))

    def _price(self, c: Candidate) -> float:
        p = c.provider
        if p is None:
            return float("inf")
        if p.config.cost is not None:
            return p.config.cost.input_per_million + p.config.cost.output_per_million
        if p.local:
            return 0.0
        try:
            got = self._registry.price(c.model, p.type_name)
        except Exception:
            got = None
        return float("inf") if got is None else float(got[0] + got[1])

    def _order(self, groups: list[list[Candidate]], strategy: str) -> list[list[Candidate]]:
        """Order provider groups (a provider's models stay together) by the strategy."""
        if len(groups) < 2 or strategy == "priority":
            return groups
        if strategy == "round_robin":
            k = next(self._rr) % len(groups)
            return groups[k:] + groups[:k]
        if strategy == "cost":
            return sorted(groups, key=lambda g: self._price(g[0]))
        if strategy == "latency":
            # Never-measured providers go first (0): that is how they get measured.
            return sorted(groups, key=lambda g: self._latency.get(g[0].name, 0.0))
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
                load = None
        if isinstance(load, (int, float)):
            return float(load)
        return float(self._in_flight.get(group[0].name, 0))

    def _serving_agents(self) -> dict[str, Agent]:
        """Enabled agents configured with ``serve_prompts: true`` whose program is installed."""
        out: dict[str, Agent] = {}
        for name, agent in self.runtime.agents.items():
            if not agent.config.serve_prompts:
                continue
            if name not in self._available:
                self._available[name] = agent.available()
            if self._available[name]:
                out[name] = agent
        return out

    # -- calling ------------------------------------------------------------------------
    def _begin(self, op: str, request: Any, provider: str | None, fallback: bool | None,
               require: list[str] | None, min_context: int | None,
               plan_request: ChatRequest | None = None) -> _Run:
        plan = self._plan(plan_request or request, provider, fallback, require, min_context, op)
        return _Run(self, op, request, plan)

    def _invoke(self, run: _Run, cand: Candidate, req: Any, is_async: bool) -> Any:
        run.tries += 1
        if cand.kind == "cli":
            return self._agent_call(cand, req, is_async)
        p = cand.provider
        assert p is not None
        if run.op == "embed":
            embed = p.aembed if is_async else p.embed
            model = cand.model
            call = GenerationCall(operation="embed", request=req, provider=p,
                                  is_async=is_async, proceed=lambda t: embed(t, model))
        else:
            method = {
                ("chat", False): p.chat, ("stream", False): p.stream,
                ("generate", False): p.generate, ("chat", True): p.achat,
                ("stream", True): p.astream, ("generate", True): p.agenerate,
            }[(run.op, is_async)]
            call = GenerationCall(operation=run.op, request=req, provider=p, is_async=is_async,
                                  proceed=method)
        return self.runtime.pm.hook.llmcore_generate(call=call)

    def _agent_call(self, cand: Candidate, request: ChatRequest, is_async: bool) -> Any:
        agent = cand.agent
        assert agent is not None
        task = AgentTask(prompt=prompt_text(request.messages), cwd=os.getcwd(),
                         mode="read_only", model=cand.model,
                         timeout=request.timeout or agent.config.timeout,
                         args=list(agent.config.args))

        def run() -> ChatResponse:
            call = AgentCall(task=task, agent=agent, proceed=lambda t: agent.run(t))
            result = self.runtime.pm.hook.llmcore_run_agent(call=call)
            if not result.success:
                raise ResponseError(
                    f"{agent.name}: {result.error or f'exited with {result.exit_code}'}",
                    provider=agent.name, model=cand.model)
            return ChatResponse(content=result.output, model=result.model or cand.model,
                                provider=agent.name, usage=result.usage or Usage(),
                                cost_usd=result.cost_usd, finish_reason="stop")

        if is_async:
            import asyncio

            return asyncio.to_thread(run)
        return run()

    def _attempts(self, run: _Run, cand: Candidate, once: Callable[[], _T]) -> _T:
        """Call ``once``; after a retryable failure, retry it under tenacity.

        The first call runs outside tenacity so that the common case (it answers) pays
        nothing for the retry machinery.
        """
        try:
            return once()
        except ProviderError as first:
            if not run.should_retry(cand, first):
                raise
            time.sleep(self._before_retry(run, cand, first))
        for attempt in self._retrying(run, cand, False):
            with attempt:
                return once()
        raise AssertionError("tenacity ended without a result or an error")  # pragma: no cover

    async def _aattempts(self, run: _Run, cand: Candidate,
                         once: Callable[[], Awaitable[_T]]) -> _T:
        """The async :meth:`_attempts`."""
        try:
            return await once()
        except ProviderError as first:
            if not run.should_retry(cand, first):
                raise
            import asyncio

            await asyncio.sleep(self._before_retry(run, cand, first))
        async for attempt in self._retrying(run, cand, True):
            with attempt:
                return await once()
        raise AssertionError("tenacity ended without a result or an error")  # pragma: no cover

    def _retrying(self, run: _Run, cand: Candidate, is_async: bool) -> Any:
        """tenacity for the retries after the first failed call (already waited for)."""
        import tenacity

        cfg = _retry_cfg(cand)
        wait = _Wait(cfg, offset=1)
        kw: dict[str, Any] = dict(
            stop=tenacity.stop_after_attempt(max(1, cfg.max_attempts) - 1),
            wait=wait,
            retry=tenacity.retry_if_exception(lambda e: run.should_retry(cand, e)),
            before_sleep=lambda state: self._on_retry(
                run, cand, state.next_action.sleep if state.next_action else 0.0),
            reraise=True,
        )
        return tenacity.AsyncRetrying(**kw) if is_async else tenacity.Retrying(**kw)

    def _before_retry(self, run: _Run, cand: Candidate, exc: ProviderError) -> float:
        wait = _Wait(_retry_cfg(cand)).delay(exc, 1)
        self._on_retry(run, cand, wait)
        return wait

    def _on_retry(self, run: _Run, cand: Candidate, wait: float) -> None:
        last = run.attempts[-1] if run.attempts else None
        self._emit(MetricsEvent(
            kind="retry", provider=cand.name, plugin=cand.type_name, model=cand.model,
            operation=run.op, outcome=last.error_type or "error" if last else "error",
            status=last.status if last else None, attempt=run.tries + 1,
            duration_s=wait, request_id=run.rid, message=f"retrying in {wait:.3f}s",
        ))

    def _chat_once(self, run: _Run, cand: Candidate, req: Any) -> ChatResponse:
        t0 = time.monotonic()
        self._enter(cand)
        try:
            resp: ChatResponse = self._invoke(run, cand, req, False)
        except Exception as exc:
            raise run.failed_try(cand, exc, t0)  # noqa: B904 (keeps its own cause)
        finally:
            self._leave(cand)
        return run.finish(resp, cand, t0)

    async def _achat_once(self, run: _Run, cand: Candidate, req: Any) -> ChatResponse:
        t0 = time.monotonic()
        self._enter(cand)
        try:
            resp: ChatResponse = await self._invoke(run, cand, req, True)
        except Exception as exc:
            raise run.failed_try(cand, exc, t0)  # noqa: B904 (keeps its own cause)
        finally:
            self._leave(cand)
        return run.finish(resp, cand, t0)

    # -- chat, sync and async ----------------------------------------------------------
    def chat(self, request: ChatRequest, provider: str | None = None,
             fallback: bool | None = None, operation: str = "chat", *,
             require: list[str] | None = None,
             min_context: int | None = None) -> ChatResponse:
        """Answer ``request`` from the first candidate that can; see the module doc."""
        run = self._begin(operation, request, provider, fallback, require, min_context)
        for i in range(len(run.plan)):
            cand = run.begin(i)
            if cand is None:
                continue
            req = run.request_for(cand)
            try:
                return self._attempts(run, cand, functools.partial(self._chat_once, run, cand, req))
            except _Unsupported:
                continue
            except ProviderError as exc:
                run.give_up(cand, exc)
        raise run.all_failed()

    async def achat(self, request: ChatRequest, provider: str | None = None,
                    fallback: bool | None = None, operation: str = "chat", *,
                    require: list[str] | None = None,
                    min_context: int | None = None) -> ChatResponse:
        """The async :meth:`chat`: the same plan, retries, cooldowns and attempts."""
        run = self._begin(operation, request, provider, fallback, require, min_context)
        for i in range(len(run.plan)):
            cand = run.begin(i)
            if cand is None:
                continue
            req = run.request_for(cand)
            try:
                return await self._aattempts(run, cand,
                                             functools.partial(self._achat_once, run, cand, req))
            except _Unsupported:
                continue
            except ProviderError as exc:
                run.give_up(cand, exc)
        raise run.all_failed()

    # -- streaming ----------------------------------------------------------------------
    def stream(self, request: ChatRequest, provider: str | None = None,
               fallback: bool | None = None, *, require: list[str] | None = None,
               min_context: int | None = None) -> Iterator[StreamChunk]:
        """Yield the answer as it comes. Failures before the first chunk fail over;
        after it, :class:`StreamInterrupted` carries the partial text. The returned
        iterator's ``attempts`` fills in as candidates are tried."""
        run = self._begin("stream", request, provider, fallback, require, min_context)
        return RoutedStream(self._stream(run), run.attempts)

    def _stream(self, run: _Run) -> Iterator[StreamChunk]:
        for i in range(len(run.plan)):
            cand = run.begin(i)
            if cand is None:
                continue
            req = run.request_for(cand)
            try:
                opened = self._attempts(
                    run, cand, functools.partial(self._open_stream, run, cand, req))
            except _Unsupported:
                continue
            except ProviderError as exc:
                run.give_up(cand, exc)
                continue
            it, held, t0 = opened
            ttft = time.monotonic() - run.start
            parts: list[str] = []
            last: list[StreamChunk] = []  # the last chunk with usage (and the model)
            try:
                for chunk in itertools.chain(held, it):
                    if chunk.content:
                        parts.append(chunk.content)
                    if chunk.usage is not None:
                        last[:] = [chunk]
                    yield chunk
            except Exception as exc:
                raise run.interrupted(cand, exc, t0, parts)  # noqa: B904
            finally:
                self._leave(cand)
                close = getattr(it, "close", None)
                if close is not None:  # the caller stopped early: release the connection
                    close()
            self._stream_done(run, cand, t0, ttft, last[0] if last else None)
            return
        raise run.all_failed()

    def _open_stream(self, run: _Run, cand: Candidate,
                     req: Any) -> tuple[Iterator[StreamChunk], list[StreamChunk], float]:
        """Call and read up to the first chunk that carries something (retryable part)."""
        t0 = time.monotonic()
        self._enter(cand)
        held: list[StreamChunk] = []
        try:
            got = self._invoke(run, cand, req, False)
            it: Iterator[StreamChunk] = (iter([_as_chunk(got, cand)]) if cand.kind == "cli"
                                         else iter(got))
            for chunk in it:
                held.append(chunk)
                if _carries(chunk):
                    break
        except Exception as exc:
            self._leave(cand)
            raise run.failed_try(cand, exc, t0)  # noqa: B904 (keeps its own cause)
        return it, held, t0

    def astream(self, request: ChatRequest, provider: str | None = None,
                      fallback: bool | None = None, *, require: list[str] | None = None,
                      min_context: int | None = None) -> AsyncIterator[StreamChunk]:
        """The async :meth:`stream`."""
        run = self._begin("stream", request, provider, fallback, require, min_context)
        return AsyncRoutedStream(self._astream(run), run.attempts)

    async def _astream(self, run: _Run) -> AsyncIterator[StreamChunk]:
        for i in range(len(run.plan)):
            cand = run.begin(i)
            if cand is None:
                continue
            req = run.request_for(cand)
            try:
                opened = await self._aattempts(
                    run, cand, functools.partial(self._aopen_stream, run, cand, req))
            except _Unsupported:
                continue
            except ProviderError as exc:
                run.give_up(cand, exc)
                continue
            it, held, t0 = opened
            ttft = time.monotonic() - run.start
            parts: list[str] = []
            last: list[StreamChunk] = []  # the last chunk with usage (and the model)
            try:
                for chunk in held:
                    if chunk.content:
                        parts.append(chunk.content)
                    if chunk.usage is not None:
                        last[:] = [chunk]
                    yield chunk
                async for chunk in it:
                    if chunk.content:
                        parts.append(chunk.content)
                    if chunk.usage is not None:
                        last[:] = [chunk]
                    yield chunk
            except Exception as exc:
                raise run.interrupted(cand, exc, t0, parts)  # noqa: B904
            finally:
                self._leave(cand)
                aclose = getattr(it, "aclose", None)
                if aclose is not None:  # the caller stopped early: release the connection
                    await aclose()
            self._stream_done(run, cand, t0, ttft, last[0] if last else None)
            return
        raise run.all_failed()

    async def _aopen_stream(self, run: _Run, cand: Candidate, req: Any
                            ) -> tuple[AsyncIterator[StreamChunk], list[StreamChunk], float]:
        t0 = time.monotonic()
        self._enter(cand)
        held: list[StreamChunk] = []
        try:
            got = self._invoke(run, cand, req, True)
            if cand.kind == "cli":
                it: AsyncIterator[StreamChunk] = _aiter_one(_as_chunk(await got, cand))
            else:
                it = got.__aiter__()
            while True:
                try:
                    chunk = await it.__anext__()
                except StopAsyncIteration:
                    break
                held.append(chunk)
                if _carries(chunk):
                    break
        except Exception as exc:
            self._leave(cand)
            raise run.failed_try(cand, exc, t0)  # noqa: B904 (keeps its own cause)
        return it, held, t0

    def _stream_done(self, run: _Run, cand: Candidate, t0: float, ttft: float,
                     last: StreamChunk | None) -> None:
        a = run.succeeded(cand, t0, last.model if last else None)
        if not self.listening:
            return
        u = last.usage if last and last.usage else None
        latency = time.monotonic() - run.start
        out = u.output_tokens if u else None
        self._emit(MetricsEvent(
            kind="request", provider=cand.name, plugin=cand.type_name, model=a.model,
            operation="stream", latency_s=latency, ttft_s=ttft,
            input_tokens=u.input_tokens if u else None, output_tokens=out,
            tokens_per_s=out / (latency - ttft) if out and latency > ttft else None,
            attempts=len(run.attempts), request_id=run.rid,
        ))

    # -- embeddings and model lists ----------------------------------------------------
    def embed(self, texts: list[str], model: str | None = None,
              provider: str | None = None) -> EmbeddingResponse:
        """Embed ``texts`` with the first provider that supports embeddings."""
        run = self._begin("embed", texts, provider, None, None, None,
                          plan_request=ChatRequest(messages=[], model=model))
        for i in range(len(run.plan)):
            cand = run.begin(i)
            if cand is None:
                continue
            try:
                return self._attempts(
                    run, cand, functools.partial(self._embed_once, run, cand, texts))
            except _Unsupported:
                continue
            except ProviderError as exc:
                run.give_up(cand, exc)
        if not run.attempts:
            raise AllProvidersFailed([], message="no enabled provider supports embeddings")
        raise run.all_failed()

    async def aembed(self, texts: list[str], model: str | None = None,
                     provider: str | None = None) -> EmbeddingResponse:
        run = self._begin("embed", texts, provider, None, None, None,
                          plan_request=ChatRequest(messages=[], model=model))
        for i in range(len(run.plan)):
            cand = run.begin(i)
            if cand is None:
                continue
            try:
                return await self._aattempts(run, cand,
                                             functools.partial(self._aembed_once, run, cand, texts))
            except _Unsupported:
                continue
            except ProviderError as exc:
                run.give_up(cand, exc)
        if not run.attempts:
            raise AllProvidersFailed([], message="no enabled provider supports embeddings")
        raise run.all_failed()

    def _embed_once(self, run: _Run, cand: Candidate, texts: list[str]) -> EmbeddingResponse:
        t0 = time.monotonic()
        try:
            resp: EmbeddingResponse = self._invoke(run, cand, texts, False)
        except Exception as exc:
            raise run.failed_try(cand, exc, t0)  # noqa: B904 (keeps its own cause)
        return self._embedded(run, cand, resp, t0)

    async def _aembed_once(self, run: _Run, cand: Candidate,
                           texts: list[str]) -> EmbeddingResponse:
        t0 = time.monotonic()
        try:
            resp: EmbeddingResponse = await self._invoke(run, cand, texts, True)
        except Exception as exc:
            raise run.failed_try(cand, exc, t0)  # noqa: B904 (keeps its own cause)
        return self._embedded(run, cand, resp, t0)

    def _embedded(self, run: _Run, cand: Candidate, resp: EmbeddingResponse,
                  t0: float) -> EmbeddingResponse:
        run.succeeded(cand, t0, resp.model)
        resp.provider = resp.provider or cand.name
        if not self.listening:
            return resp
        self._emit(MetricsEvent(
            kind="request", provider=cand.name, plugin=cand.type_name, model=resp.model,
            operation="embed", input_tokens=resp.usage.input_tokens,
            latency_s=time.monotonic() - run.start, attempts=len(run.attempts),
            request_id=run.rid,
        ))
        return resp

    def models(self, provider: str | None = None) -> list[ModelInfo]:
        out: list[ModelInfo] = []
        for name, p in self.runtime.providers.items():
            if provider is None or provider == name:
                out.extend(p.models())
        return out

    async def amodels(self, provider: str | None = None) -> list[ModelInfo]:
        out: list[ModelInfo] = []
        for name, p in self.runtime.providers.items():
            if provider is None or provider == name:
                out.extend(await p.amodels())
        return out

    def close(self) -> None:
        """Release the cooldown store's connections (it reopens on next use)."""
        if self._store is not None:
            self._store.close()
            self._store = None


# -- helpers ------------------------------------------------------------------------------
def _retry_cfg(cand: Candidate) -> RetryConfig:
    from .config import RetryConfig

    p = cand.provider
    return p.config.retry if p is not None else RetryConfig(max_attempts=1)


class _Wait:
    """The wait before retry ``n`` (1 = the first retry), usable as a tenacity ``wait``.

    ``Retry-After`` (capped by ``max_retry_after``) when the server sent one; otherwise
    ``delay`` (fixed) or ``delay * 2**(n-1)`` capped by ``max_delay`` (exponential), plus
    up to ``jitter`` seconds. ``offset`` maps tenacity's attempt numbers to ``n``.
    """

    def __init__(self, cfg: RetryConfig, offset: int = 0) -> None:
        self.cfg = cfg
        self.offset = offset

    def delay(self, exc: BaseException | None, n: int) -> float:
        cfg = self.cfg
        after = getattr(exc, "retry_after", None)
        if isinstance(after, (int, float)):
            return float(min(max(after, 0.0), cfg.max_retry_after))
        if cfg.wait == "fixed":
            base = cfg.delay
        else:
            base = min(cfg.max_delay, cfg.delay * 2.0 ** max(0, n - 1))
        if cfg.jitter > 0:
            import random

            base += random.uniform(0, cfg.jitter)
        return float(base)

    def __call__(self, state: Any) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return self.delay(exc, state.attempt_number + self.offset)


def _as_provider_error(cand: Candidate, exc: BaseException) -> ProviderError | None:
    """Map whatever a candidate raised to a ProviderError; ``None`` means "not its fault"."""
    if isinstance(exc, ProviderError):
        if exc.provider is None:
            exc.provider = cand.name
        return exc
    if isinstance(exc, NotImplementedError):
        raise _Unsupported(str(exc)) from exc
    if isinstance(exc, AgentError):
        return ResponseError(exc.message, provider=cand.name, model=cand.model, hint=exc.hint)
    if isinstance(exc, LLMCoreError) or not isinstance(exc, Exception):
        return None
    # A transport error the provider did not map (e.g. a stream dropped mid-read).
    err = _map_foreign(cand, exc)
    err.__cause__ = exc
    return err


def _map_foreign(cand: Candidate, exc: BaseException) -> ProviderError:
    name = type(exc).__name__
    text = f"{cand.name}: {name}: {exc}"
    module = type(exc).__module__.split(".")[0]
    if "Timeout" in name or isinstance(exc, TimeoutError):
        return ProviderTimeoutError(text, provider=cand.name, model=cand.model)
    if module in ("httpx", "httpcore", "aiohttp", "h11") or isinstance(exc, OSError):
        return ProviderConnectionError(text, provider=cand.name, model=cand.model)
    return ResponseError(text, provider=cand.name, model=cand.model)


def _refused(exc: BaseException) -> bool:
    """Did the connection get refused (nothing listens)? Looks through the cause chain."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ConnectionRefusedError) or isinstance(
                getattr(seen, "os_error", None), ConnectionRefusedError):  # aiohttp's wrapper
            return True
        if isinstance(seen, OSError) and seen.errno == errno.ECONNREFUSED:
            return True
        text = str(seen)
        if "Connection refused" in text or "Errno 111" in text or "ECONNREFUSED" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _hint(cand: Candidate, err: ProviderError) -> str | None:
    """What the user should do: the provider's own hint, else one from the error class."""
    name = cand.name
    section = f"agents.{name}" if cand.kind == "cli" else f"providers.{name}"
    if isinstance(err, AuthenticationError):
        cfg = cand.provider.config if cand.provider else None
        default_env = getattr(cand.provider, "default_api_key_env", None)
        if cfg is not None and cfg.api_key_env:
            where = f"set {cfg.api_key_env}"
        elif cfg is not None and cfg.api_key:
            where = f"fix {section}.api_key"
        elif default_env:
            where = f"set {default_env}"
        else:
            where = f"set {section}.api_key_env"
        base = f"configuration problem: {where} to a valid key"
        return f"{base} ({err.hint})" if err.hint else base
    if err.hint:
        return err.hint
    base_url = getattr(cand.provider, "base_url", None)
    if isinstance(err, ProviderConnectionError):
        return redact(f"start {name} (is it listening on {base_url}?), or set "
                      f"{section}.enabled: false")
    if isinstance(err, ProviderTimeoutError):
        return f"the server is slow or stuck: check it, or raise {section}.timeout"
    if isinstance(err, ModelNotFoundError):
        return f"pull the model on {name}, or pick one from `llmcore models`"
    if isinstance(err, RateLimitError):
        return "rate limited: wait, or add another provider to the chain"
    if err.status and err.status >= 500:
        return f"{name} failed on its side: see its logs"
    return None


def describe_attempts(attempts: list[Attempt]) -> str:
    """``AllProvidersFailed``'s text: one line per attempt, what to do, when one is back."""
    if not attempts:
        return "no provider or agent can serve this request (none enabled or none qualifies)"
    lines = [f"all {len(attempts)} attempt(s) failed:"]
    for a in attempts:
        status = f" {a.status}" if a.status else ""
        what = "skipped (cooling down)" if a.skipped else f"{a.error_type}{status}"
        lines.append(f"  - {a.provider}/{a.model or '-'}: {what} after "
                     f"{a.duration_s * 1000:.0f} ms: {a.message}")
        if a.hint:
            lines.append(f"      fix: {a.hint}")
    if all(a.skipped for a in attempts):
        first = min(a.cooldown_until or 0.0 for a in attempts)
        who = next(a for a in attempts if (a.cooldown_until or 0.0) == first)
        lines.append(f"every candidate is cooling down; the first back is {who.provider} "
                     f"in {max(0.0, first - time.time()):.0f}s (at {_clock(first)})")
    return "\n".join(lines)


def _clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


def parameter_count(text: str | None) -> float | None:
    """Billions of parameters named in ``text``: ``llama3:70b`` → 70, ``gemma-3-270m`` → 0.27."""
    if not text:
        return None
    found = _PARAMS.findall(text)
    if not found:
        return None
    value, unit = found[-1]
    return float(value) / (1000.0 if unit in "mM" else 1.0)


def prompt_text(messages: list[Any]) -> str:
    """A chat as one prompt for an agent: the lone user message, or ``role: text`` lines."""
    if len(messages) == 1 and messages[0].role == "user":
        return str(messages[0].content)
    return "\n\n".join(f"{m.role}: {m.content}" for m in messages)


def _carries(chunk: StreamChunk) -> bool:
    """Does the chunk carry something the caller would see (not only a role header)?"""
    return bool(chunk.content or chunk.thinking or chunk.tool_calls or chunk.finish_reason)


def _as_chunk(resp: ChatResponse, cand: Candidate) -> StreamChunk:
    return StreamChunk(content=resp.content, finish_reason="stop", usage=resp.usage,
                       model=resp.model, provider=cand.name)


async def _aiter_one(chunk: StreamChunk) -> AsyncIterator[StreamChunk]:
    yield chunk
