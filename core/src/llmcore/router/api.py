"""The :class:`Router`: the one object the client talks to.

It owns the per-runtime parts (plans, strategies' measurements, cooldowns, prices) and
starts a :class:`.run.Run` per request; the loops live in :mod:`.calls` and
:mod:`.streams`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from ..pricing import Pricing
from ..types import ChatRequest, ChatResponse, EmbeddingResponse, ModelInfo, StreamChunk
from .calls import afirst_answer, first_answer
from .candidates import Candidate, Planner
from .checks import check_request
from .policy import Cooldowns
from .run import Crew, Run
from .strategies import Balancer
from .streams import AsyncRoutedStream, RoutedStream, astream, stream

if TYPE_CHECKING:
    from ..metrics import MetricsEvent
    from ..runtime import Runtime
    from ..state import CooldownStore


class Router:
    """Routes requests over the runtime's providers (and agents serving prompts)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.pricing = Pricing(runtime)
        self.balancer = Balancer(runtime, self.pricing)
        self.planner = Planner(runtime, self.balancer, self.pricing)
        self.policy = Cooldowns(runtime, self.balancer.lock)
        # What every run of this router works with (a run never reaches back in here).
        self.crew = Crew(
            policy=self.policy,
            balancer=self.balancer,
            pricing=self.pricing,
            chooser=self.planner.chooser,
            hooks=runtime.hooks,
            config=runtime.config,
            emit=self.emit,
            listening=lambda: runtime.metrics.listening,
            providers=lambda: runtime.providers,
        )
        # The strategies' measurements, by provider name (read by tests and tools).
        self._latency = self.balancer.latency
        self._in_flight = self.balancer.in_flight

    # -- shared state -----------------------------------------------------------------
    @property
    def store(self) -> CooldownStore:
        """The cooldown store ``routing.state`` names (opened on first use)."""
        return self.policy.store

    def cooldowns(self) -> dict[str, tuple[float, str]]:
        """The running cooldowns: key → (until as epoch seconds, reason)."""
        return {k: (c.until, c.reason) for k, c in self.policy.active().items()}

    def clear_cooldowns(self, key: str | None = None) -> None:
        self.store.clear(key)

    @property
    def listening(self) -> bool:
        """Does anyone receive metrics events? If not, the hot path does not build them."""
        return self.runtime.metrics.listening

    def emit(self, event: MetricsEvent) -> None:
        self.runtime.metrics.emit(event)

    # -- choosing ---------------------------------------------------------------------
    def candidates(
        self,
        request: ChatRequest,
        provider: str | None = None,
        fallback: bool | None = None,
        *,
        require: list[str] | None = None,
        min_context: int | None = None,
        include_cooling: bool = False,
    ) -> list[Candidate]:
        """The plan for ``request`` in the order it would be tried.

        Cooling candidates are left out unless ``include_cooling`` (the router itself
        keeps them, to report them as skipped).
        """
        plan = self.planner.plan(request, provider, fallback, require, min_context, "chat")
        if include_cooling:
            return plan
        return [c for c in plan if self.policy.cooling(c) is None]

    def _begin(
        self,
        op: str,
        request: Any,
        provider: str | None,
        fallback: bool | None,
        require: list[str] | None,
        min_context: int | None,
        plan_request: ChatRequest | None = None,
    ) -> Run:
        check_request(request, op)
        plan = self.planner.plan(
            plan_request or request, provider, fallback, require, min_context, op
        )
        return Run(self.crew, op, request, plan)

    # -- requests -----------------------------------------------------------------------
    def chat(
        self,
        request: ChatRequest,
        provider: str | None = None,
        fallback: bool | None = None,
        operation: str = "chat",
        *,
        require: list[str] | None = None,
        min_context: int | None = None,
    ) -> ChatResponse:
        """Answer ``request`` from the first candidate that can; see the package doc."""
        run = self._begin(operation, request, provider, fallback, require, min_context)
        resp: ChatResponse = first_answer(run)
        return resp

    async def achat(
        self,
        request: ChatRequest,
        provider: str | None = None,
        fallback: bool | None = None,
        operation: str = "chat",
        *,
        require: list[str] | None = None,
        min_context: int | None = None,
    ) -> ChatResponse:
        """The async :meth:`chat`: the same plan, retries, cooldowns and attempts."""
        if request.model is None:
            await self._achoose(provider)
        run = self._begin(operation, request, provider, fallback, require, min_context)
        resp: ChatResponse = await afirst_answer(run)
        return resp

    async def _achoose(self, provider: str | None) -> None:
        """Make the automatic model choices a plan will need on a worker thread, so the
        event loop never waits for a server's model list (cached: usually a no-op)."""
        import asyncio

        chooser = self.planner.chooser
        due = [
            p
            for name, p in self.runtime.providers.items()
            if (provider is None or provider == name)
            and not p.config.models
            and not chooser.fresh(name)
        ]
        if due:
            await asyncio.gather(*(asyncio.to_thread(chooser.choose, p) for p in due))

    def stream(
        self,
        request: ChatRequest,
        provider: str | None = None,
        fallback: bool | None = None,
        *,
        require: list[str] | None = None,
        min_context: int | None = None,
    ) -> Iterator[StreamChunk]:
        """Yield the answer as it comes. Failures before the first chunk fail over;
        after it, :class:`StreamInterrupted` carries the partial text. The returned
        iterator's ``attempts`` fills in as candidates are tried."""
        run = self._begin("stream", request, provider, fallback, require, min_context)
        return RoutedStream(stream(run), run.attempts)

    def astream(
        self,
        request: ChatRequest,
        provider: str | None = None,
        fallback: bool | None = None,
        *,
        require: list[str] | None = None,
        min_context: int | None = None,
    ) -> AsyncIterator[StreamChunk]:
        """The async :meth:`stream`."""
        run = self._begin("stream", request, provider, fallback, require, min_context)
        return AsyncRoutedStream(astream(run), run.attempts)

    def _begin_embed(self, texts: list[str], model: str | None, provider: str | None) -> Any:
        """The run of one embedding call (planned like a chat for ``model``), sync or async."""
        return self._begin(
            "embed",
            texts,
            provider,
            None,
            None,
            None,
            plan_request=ChatRequest(messages=[], model=model),
        )

    def embed(
        self, texts: list[str], model: str | None = None, provider: str | None = None
    ) -> EmbeddingResponse:
        """Embed ``texts`` with the first provider that supports embeddings."""
        resp: EmbeddingResponse = first_answer(self._begin_embed(texts, model, provider))
        return resp

    async def aembed(
        self, texts: list[str], model: str | None = None, provider: str | None = None
    ) -> EmbeddingResponse:
        """The async :meth:`embed`."""
        resp: EmbeddingResponse = await afirst_answer(self._begin_embed(texts, model, provider))
        return resp

    def models(self, provider: str | None = None, refresh: bool = False) -> list[ModelInfo]:
        """What the providers serve, asked now. ``refresh`` also drops every cached
        automatic model choice (see :mod:`.choice`); the listings refill it."""
        if refresh:
            self.planner.chooser.invalidate(provider)
        out: list[ModelInfo] = []
        for name, p in self.runtime.providers.items():
            if provider is None or provider == name:
                got = p.models()
                if refresh:
                    self.planner.chooser.learn(p, got)
                out.extend(got)
        return out

    async def amodels(self, provider: str | None = None, refresh: bool = False) -> list[ModelInfo]:
        if refresh:
            self.planner.chooser.invalidate(provider)
        out: list[ModelInfo] = []
        for name, p in self.runtime.providers.items():
            if provider is None or provider == name:
                got = await p.amodels()
                if refresh:
                    self.planner.chooser.learn(p, got)
                out.extend(got)
        return out

    def close(self) -> None:
        """Release the cooldown store's connections (it reopens on next use)."""
        self.policy.close()
