"""One request through its plan: the attempts, and every decision about them.

The sync and async loops (:mod:`.calls`, :mod:`.streams`) only call and await; what to
record, whether to retry, when to cool down and what to emit is decided here, once.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import (
    AllProvidersFailed,
    ModelNotFoundError,
    ProviderError,
    RateLimitError,
    StreamInterrupted,
)
from ..metrics import MetricsEvent
from ..types import Attempt, ChatResponse, EmbeddingResponse, StreamChunk, Usage
from .agents_as_providers import cannot_carry
from .candidates import ROUTING_KEYS
from .failures import as_provider_error, hint, refused
from .policy import retry_after, retry_cfg

if TYPE_CHECKING:
    from ..config import Config
    from ..hooks import Hooks
    from ..pricing import Pricing
    from ..provider import Provider
    from .candidates import Candidate
    from .choice import ModelChooser
    from .policy import Cooldowns
    from .strategies import Balancer

# Request ids: a random per-process prefix and a counter (a syscall per request was measurable).
_RID_PREFIX = os.urandom(4).hex() + "-"
_RID_COUNTER = itertools.count(1)


@attrs.frozen
class Crew:
    """What a :class:`Run` works with, handed over by its :class:`~.api.Router` (one per
    router, shared by its runs): a run decides with these and never asks the router.

    ``emit``/``listening``/``providers`` are functions because what they read is built
    lazily by the runtime (the metrics sinks, the providers), after the router exists.
    """

    policy: Cooldowns  # cooldowns and the failure streaks
    balancer: Balancer  # in-flight counts and latencies (routing.strategy); its lock
    pricing: Pricing  # the cost of an answer
    chooser: ModelChooser  # automatic model choices (a failed listing is an answer)
    hooks: Hooks  # the calls go through the generation / agent-run hooks
    config: Config
    emit: Callable[[MetricsEvent], None]
    listening: Callable[[], bool]  # does anyone receive events? (else none is built)
    providers: Callable[[], Mapping[str, Provider]]  # for "nobody serves that model"

    def answered(self, cand: Candidate, duration: float) -> None:
        """A call succeeded: reset its failures in a row, measure its latency."""
        with self.balancer.lock:
            self.policy.succeeded(cand)
            self.balancer.measured(cand, duration)


class Run:
    """The state of one request: its plan, its attempts, and every decision about them."""

    __slots__ = (
        "attempts",
        "cooled",
        "crew",
        "errors",
        "index",
        "op",
        "plan",
        "request",
        "rid",
        "start",
        "tries",
    )

    def __init__(self, crew: Crew, op: str, request: Any, plan: list[Candidate]) -> None:
        self.crew = crew
        self.op = op
        self.request = request
        self.plan = plan
        self.rid = f"{_RID_PREFIX}{next(_RID_COUNTER):x}"
        self.start = time.monotonic()
        self.attempts: list[Attempt] = []
        self.index = -1  # position in the plan of the candidate being tried
        self.tries = 0  # calls made to the current candidate
        self.cooled: set[str] = set()  # keys this run has just cooled down
        self.errors: list[ProviderError] = []  # why each call failed, in order

    # -- per candidate ------------------------------------------------------------------
    def next(self) -> Candidate | None:
        """The next candidate of the plan that is not cooling down; ``None`` at the end.

        A cooling one is recorded as a skipped attempt, without a network call.
        """
        plan = self.plan
        while self.index + 1 < len(plan):
            self.index += 1
            self.tries = 0
            cand = plan[self.index]
            if cand.skip is not None:  # over budget, cannot see images (llmcore.gates)
                kind, message, hint, until = cand.skip
                self._record(
                    Attempt(
                        provider=cand.name,
                        model=cand.model,
                        ok=False,
                        error_type=kind,
                        message=message,
                        hint=hint,
                        skipped=True,
                        cooldown_until=until,
                    ),
                    cand,
                )
                continue
            if cand.kind == "cli" and self.op != "embed":
                lost = cannot_carry(self.request)
                if lost:
                    self._cannot_carry(cand, lost)
                    continue
            cool = self.crew.policy.cooling(cand)
            if cool is None:
                return cand
            self._skip(cand, *cool)
        return None

    def _cannot_carry(self, cand: Candidate, lost: list[str]) -> None:
        """A candidate that would drop part of the request: skipped, never called."""
        self._record(
            Attempt(
                provider=cand.name,
                model=cand.model,
                ok=False,
                error_type="CannotCarry",
                message=f"not called: an agent cannot take {', '.join(lost)}",
                skipped=True,
                hint="send it to an API provider that supports it, or leave that part out",
            ),
            cand,
        )

    def _skip(self, cand: Candidate, until: float, reason: str) -> None:
        left = max(0.0, until - time.time())
        self._record(
            Attempt(
                provider=cand.name,
                model=cand.model,
                ok=False,
                error_type="CoolingDown",
                message=f"cooling down for {left:.1f}s more ({reason})"
                if reason
                else f"cooling down for {left:.1f}s more",
                hint=f"back at {clock(until)}; another provider, or wait",
                skipped=True,
                cooldown_until=until,
            ),
            cand,
        )

    def request_for(self, cand: Candidate) -> Any:
        """The request as ``cand`` gets it (its model; ``stream`` set for streams)."""
        if self.op == "embed" or cand.kind == "cli":
            return self.request
        req = self.request
        if any(k in req.extra for k in ROUTING_KEYS):  # routing hints stay with the router
            req = attrs.evolve(
                req, extra={k: v for k, v in req.extra.items() if k not in ROUTING_KEYS}
            )
        if req.model == cand.model and (self.op != "stream" or req.stream):
            return req
        return attrs.evolve(req, model=cand.model, stream=self.op == "stream")

    def has_next(self) -> bool:
        return self.index + 1 < len(self.plan)

    # -- failures -----------------------------------------------------------------------
    def failed_try(
        self, cand: Candidate, exc: BaseException, t0: float, *, mid_stream: bool = False
    ) -> ProviderError:
        """Record one failed call; return the error to retry on or fail over from.

        Errors that are not about the provider (a guard hook refusing, bad config) are
        raised as they are: failing over would not help. Cooldowns are decided here, so
        the attempt (and its event) says until when the candidate cools.
        """
        err = as_provider_error(cand, exc)
        if err is None:
            raise exc
        self.errors.append(err)
        if isinstance(err, ModelNotFoundError):  # the server's list changed: choose again
            self.crew.chooser.invalidate(cand.name)
        duration = time.monotonic() - t0
        a = Attempt(
            provider=cand.name,
            model=cand.model,
            ok=False,
            error_type=type(err).__name__,
            status=err.status,
            message=err.message,
            hint=hint(cand, err),
            duration_s=duration,
            retry=self.tries - 1,
        )
        policy = self.crew.policy
        due = policy.after_failure(cand, err)
        if due is not None:
            self._cool(cand, cand.name, due[0], due[1], a)
        if isinstance(err, RateLimitError) and not mid_stream and not self.should_retry(cand, err):
            # Given up on (the loops ask should_retry in the same state): cool it now.
            limit = policy.after_rate_limit(cand, err)
            if limit is not None:
                self._cool(cand, limit[0], limit[1], "rate limited", a)
        self._record(a, cand)
        return err

    def should_retry(self, cand: Candidate, exc: BaseException) -> bool:
        """May the same candidate be called again after ``exc``?"""
        if not isinstance(exc, ProviderError) or isinstance(exc, StreamInterrupted):
            return False
        if cand.kind == "cli" or self.tries >= retry_cfg(cand).max_attempts:
            return False  # agents are never retried: a run can take minutes
        if not exc.retryable or refused(exc):
            return False  # a refused connection will not be accepted 0.25 s later
        if cand.name in self.cooled or cand.model_key in self.cooled:
            return False
        if isinstance(exc, RateLimitError):
            cap = retry_cfg(cand).max_retry_after
            after = retry_after(exc)
            if after is not None and after > cap:
                return False
            # Waiting out a rate limit only makes sense when nobody else can answer.
            return not self._later_candidates()
        return True

    def _later_candidates(self) -> bool:
        active = self.crew.policy.active()
        for c in self.plan[self.index + 1 :]:
            if c.name not in active and c.model_key not in active:
                return True
        return False

    def retrying(self, cand: Candidate, wait: float) -> None:
        """Note that ``cand`` is called again after ``wait`` seconds."""
        last = self.attempts[-1] if self.attempts else None
        self._emit(
            "retry",
            cand,
            outcome=last.error_type or "error" if last else "error",
            status=last.status if last else None,
            attempt=self.tries + 1,
            duration_s=wait,
            message=f"retrying in {wait:.3f}s",
        )

    def give_up(self, cand: Candidate, exc: ProviderError) -> None:
        """The candidate is done for this request (cooled in :meth:`failed_try` if due):
        note the failover."""
        if self.has_next():
            self._emit(
                "failover",
                cand,
                outcome=type(exc).__name__,
                status=exc.status,
                message=f"to {self.plan[self.index + 1].name}",
            )

    def _cool(self, cand: Candidate, key: str, seconds: float, reason: str, a: Attempt) -> None:
        seconds = self.crew.policy.seconds(seconds)
        until = time.time() + seconds
        self.crew.policy.put(key, until, reason)
        self.cooled.add(key)
        a.cooldown_until = until
        self._emit(
            "cooldown",
            cand,
            outcome=reason,
            status=a.status,
            cooldown_until=until,
            duration_s=seconds,
            message=f"{key} until {clock(until)}",
        )

    def interrupted(
        self, cand: Candidate, exc: BaseException, t0: float, parts: list[str]
    ) -> StreamInterrupted:
        """A stream broke after the caller got text: never restart it elsewhere."""
        err = as_provider_error(cand, exc)
        if err is None:
            raise exc
        self.failed_try(cand, err, t0, mid_stream=True)
        self._emit(
            "request",
            cand,
            outcome="StreamInterrupted",
            attempts=len(self.attempts),
            latency_s=time.monotonic() - self.start,
        )
        out = StreamInterrupted(
            f"stream from {cand.name} broke after {len(parts)} chunk(s): {err.message}",
            partial="".join(parts),
            provider=cand.name,
            model=cand.model,
            status=err.status,
            hint="the partial answer is in .partial; ask again to get a whole one",
        )
        out.__cause__ = exc
        return out

    def all_failed(self) -> AllProvidersFailed:
        """The error when no candidate answered (raise it)."""
        if not self.attempts and self.op == "embed":
            return AllProvidersFailed([], message="no enabled provider supports embeddings")
        self._emit(
            "request",
            None,
            outcome="AllProvidersFailed",
            latency_s=time.monotonic() - self.start,
            attempts=len(self.attempts),
        )
        if not self.attempts:
            return AllProvidersFailed([], message=self._nobody_serves())
        return all_failed_error(self.attempts, self.errors)

    def _nobody_serves(self) -> str:
        """Say why no candidate was even tried: which model was asked, who serves what."""
        model = getattr(self.request, "model", None)
        providers = self.crew.providers()
        if not providers:
            return "no provider is enabled: configure one in llmcore.yaml (see `llmcore providers`)"
        if model:
            served = [
                f"{name} ({', '.join(p.config.models)})"
                for name, p in providers.items()
                if p.config.models
            ]
            text = f"no enabled provider serves model {model!r}"
            if served:
                text += "; configured models: " + "; ".join(served)
            return text + (". Add it to a provider's `models:` list, or ask for one of those")
        return describe_attempts([])

    # -- successes ----------------------------------------------------------------------
    def succeeded(self, cand: Candidate, t0: float, model: str | None) -> Attempt:
        a = Attempt(
            provider=cand.name,
            model=model or cand.model,
            ok=True,
            duration_s=time.monotonic() - t0,
            retry=self.tries - 1,
        )
        self.crew.answered(cand, a.duration_s)
        self._record(a, cand)
        return a

    def finish(self, resp: Any, cand: Candidate, t0: float) -> Any:
        """A call answered: complete the response (a chat or embeddings) and report it."""
        if self.op == "embed":
            return self._embedded(resp, cand, t0)
        return self._answered(resp, cand, t0)

    def _answered(self, resp: ChatResponse, cand: Candidate, t0: float) -> ChatResponse:
        self.succeeded(cand, t0, resp.model)
        resp.provider = resp.provider or cand.name
        resp.attempts = self.attempts
        resp.latency_s = time.monotonic() - self.start
        if resp.cost_usd is None:  # an agent or a provider may report its own
            resp.cost_usd = self.crew.pricing.cost(cand, resp.model or cand.model, resp.usage)
        if not self.crew.listening():
            return resp
        u = resp.usage or Usage()
        self._emit(
            "request",
            cand,
            model=resp.model,
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cost_usd=resp.cost_usd,
            latency_s=resp.latency_s,
            ttft_s=resp.ttft_s,
            attempts=len(self.attempts),
        )
        return resp

    def _embedded(self, resp: EmbeddingResponse, cand: Candidate, t0: float) -> EmbeddingResponse:
        self.succeeded(cand, t0, resp.model)
        resp.provider = resp.provider or cand.name
        if not self.crew.listening():
            return resp
        self._emit(
            "request",
            cand,
            model=resp.model,
            operation="embed",
            input_tokens=resp.usage.input_tokens,
            cost_usd=self.crew.pricing.cost(cand, resp.model or cand.model, resp.usage),
            latency_s=time.monotonic() - self.start,
            attempts=len(self.attempts),
        )
        return resp

    def streamed(self, cand: Candidate, t0: float, ttft: float, last: StreamChunk | None) -> None:
        """A stream ended well; ``last`` is its last chunk with usage (and the model)."""
        a = self.succeeded(cand, t0, last.model if last else None)
        if not self.crew.listening():
            return
        u = last.usage if last and last.usage else None
        latency = time.monotonic() - self.start
        out = u.output_tokens if u else None
        self._emit(
            "request",
            cand,
            model=a.model,
            operation="stream",
            latency_s=latency,
            ttft_s=ttft,
            input_tokens=u.input_tokens if u else None,
            output_tokens=out,
            cost_usd=self.crew.pricing.cost(cand, a.model, u),
            tokens_per_s=out / (latency - ttft) if out and latency > ttft else None,
            attempts=len(self.attempts),
        )

    def _record(self, a: Attempt, cand: Candidate) -> None:
        self.attempts.append(a)
        if not self.crew.listening():
            return
        self._emit(
            "attempt",
            cand,
            provider=a.provider,
            model=a.model,
            outcome="ok" if a.ok else ("skipped" if a.skipped else (a.error_type or "error")),
            status=a.status,
            latency_s=a.duration_s,
            attempt=len(self.attempts),
            message=a.message or None,
            cooldown_until=a.cooldown_until,
        )

    def _emit(self, kind: str, cand: Candidate | None, **fields: Any) -> None:
        """One event of this run: about ``cand`` (its provider, plugin and model), for the
        run's operation and request id; ``fields`` add to or override those."""
        if cand is not None:
            fields.setdefault("provider", cand.name)
            fields.setdefault("plugin", cand.type_name)
            fields.setdefault("model", cand.model)
        fields.setdefault("operation", self.op)
        self.crew.emit(MetricsEvent(kind=kind, request_id=self.rid, **fields))


def all_failed_error(attempts: list[Attempt], errors: list[ProviderError]) -> AllProvidersFailed:
    """The error when no candidate answered.

    When every call that was made failed for the same reason (one distinct error class,
    e.g. a single provider refusing the key), the error is *also* an instance of that
    class, so ``except AuthenticationError`` works with one provider as with ten; its
    ``provider``, ``model``, ``status`` (and ``retry_after``) are the last cause's.
    Otherwise it is a plain :class:`AllProvidersFailed`.
    """
    message = describe_attempts(attempts)
    kinds = {type(e) for e in errors}
    if len(kinds) != 1:
        return AllProvidersFailed(attempts, message=message)
    cause = errors[-1]
    cls = _failed_as(type(cause))
    exc = cls(attempts, message=message)
    for name in ("provider", "model", "status", "retry_after"):
        if hasattr(cause, name):
            setattr(exc, name, getattr(cause, name))
    exc.__cause__ = cause
    return exc


_FAILED_AS: dict[type, type[AllProvidersFailed]] = {}


def _failed_as(cause: type[ProviderError]) -> type[AllProvidersFailed]:
    """``AllProvidersFailed`` that is also a ``cause`` (one class per cause class)."""
    cls = _FAILED_AS.get(cause)
    if cls is None:

        def init(self: Any, attempts: list[Attempt], *, message: str | None = None) -> None:
            AllProvidersFailed.__init__(self, attempts, message=message)

        cls = type(
            f"AllProvidersFailed_{cause.__name__}",
            (AllProvidersFailed, cause),
            {
                "__init__": init,
                "__module__": AllProvidersFailed.__module__,
                "__doc__": f"Every candidate failed with {cause.__name__}.",
            },
        )
        _FAILED_AS[cause] = cls
    return cls


def describe_attempts(attempts: list[Attempt]) -> str:
    """``AllProvidersFailed``'s text: one line per attempt, what to do, when one is back."""
    if not attempts:
        return "no provider or agent can serve this request (none enabled or none qualifies)"
    lines = [f"all {len(attempts)} attempt(s) failed:"]
    for a in attempts:
        status = f" {a.status}" if a.status else ""
        what = f"skipped ({_skip_reason(a)})" if a.skipped else f"{a.error_type}{status}"
        lines.append(
            f"  - {a.provider}/{a.model or '-'}: {what} after "
            f"{a.duration_s * 1000:.0f} ms: {a.message}"
        )
        if a.hint:
            lines.append(f"      fix: {a.hint}")
    if all(a.skipped and a.error_type == "CoolingDown" for a in attempts):
        first = min(a.cooldown_until or 0.0 for a in attempts)
        who = next(a for a in attempts if (a.cooldown_until or 0.0) == first)
        lines.append(
            f"every candidate is cooling down; the first back is {who.provider} "
            f"in {max(0.0, first - time.time()):.0f}s (at {clock(first)})"
        )
    return "\n".join(lines)


def _skip_reason(a: Attempt) -> str:
    """Why a candidate was skipped: a cooldown, or a gate (``OverBudget``, ``NoVision``)."""
    return {
        "CoolingDown": "cooling down",
        "OverBudget": "budget",
        "NoVision": "cannot see images",
    }.get(a.error_type or "", a.error_type or "")


def clock(t: float) -> str:
    try:
        return time.strftime("%H:%M:%S", time.localtime(t))
    except (OverflowError, ValueError, OSError):  # a time no clock can show
        return "?"
