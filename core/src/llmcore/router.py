"""Choose providers for a request and move to the next one when a provider fails."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import attrs

from .errors import (
    AllProvidersFailed,
    ConfigError,
    LLMCoreError,
    ProviderError,
    StreamInterrupted,
)
from .hooks import GenerationCall
from .metrics import MetricsEvent
from .types import (
    Attempt,
    ChatRequest,
    ChatResponse,
    EmbeddingResponse,
    ModelInfo,
    StreamChunk,
    Usage,
)

if TYPE_CHECKING:
    from .provider import Provider
    from .runtime import Runtime


class Router:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    # -- choosing ----------------------------------------------------------------------
    def candidates(
        self, request: ChatRequest, provider: str | None = None, fallback: bool | None = None
    ) -> list[tuple[Provider, str | None]]:
        providers = self.runtime.providers
        model = request.model
        if model and provider is None and "/" in model:
            head, _, rest = model.partition("/")
            if head in providers:
                provider, model = head, rest
        if provider is not None:
            if provider not in providers:
                from .config import suggest

                raise ConfigError(
                    f"no enabled provider named {provider!r}{suggest(provider, providers)}",
                    hint="enabled: " + (", ".join(providers) or "none"),
                )
            chosen = [providers[provider]]
        else:
            chosen = list(providers.values())
        out: list[tuple[Provider, str | None]] = []
        for p in chosen:
            if model and p.config.models and model not in p.config.models and provider is None:
                continue
            out.append((p, model or p.default_model))
        if fallback is None:
            fallback = self.runtime.config.routing.fallback
        return out if fallback else out[:1]

    # -- calling -----------------------------------------------------------------------
    def _call(self, op: str, provider: Provider, request: ChatRequest, is_async: bool) -> Any:
        method = {
            ("chat", False): provider.chat, ("stream", False): provider.stream,
            ("generate", False): provider.generate, ("chat", True): provider.achat,
            ("stream", True): provider.astream, ("generate", True): provider.agenerate,
        }[(op, is_async)]
        call = GenerationCall(
            operation=op, request=request, provider=provider, is_async=is_async, proceed=method
        )
        return self.runtime.pm.hook.llmcore_generate(call=call)

    def chat(self, request: ChatRequest, provider: str | None = None,
             fallback: bool | None = None, operation: str = "chat") -> ChatResponse:
        attempts: list[Attempt] = []
        start = time.monotonic()
        rid = uuid.uuid4().hex[:12]
        for p, model in self.candidates(request, provider, fallback):
            req = attrs.evolve(request, model=model)
            t0 = time.monotonic()
            try:
                resp: ChatResponse = self._call(operation, p, req, False)
            except ProviderError as exc:
                attempts.append(_failed(p, model, exc, time.monotonic() - t0))
                self._emit_attempt(attempts[-1], p, rid, operation)
                continue
            return self._finish(resp, p, attempts, start, t0, rid, operation)
        self._emit_failed(attempts, rid, operation, start)
        raise AllProvidersFailed(attempts)

    async def achat(self, request: ChatRequest, provider: str | None = None,
                    fallback: bool | None = None, operation: str = "chat") -> ChatResponse:
        attempts: list[Attempt] = []
        start = time.monotonic()
        rid = uuid.uuid4().hex[:12]
        for p, model in self.candidates(request, provider, fallback):
            req = attrs.evolve(request, model=model)
            t0 = time.monotonic()
            try:
                resp: ChatResponse = await self._call(operation, p, req, True)
            except ProviderError as exc:
                attempts.append(_failed(p, model, exc, time.monotonic() - t0))
                self._emit_attempt(attempts[-1], p, rid, operation)
                continue
            return self._finish(resp, p, attempts, start, t0, rid, operation)
        self._emit_failed(attempts, rid, operation, start)
        raise AllProvidersFailed(attempts)

    def stream(self, request: ChatRequest, provider: str | None = None,
               fallback: bool | None = None) -> Iterator[StreamChunk]:
        attempts: list[Attempt] = []
        for p, model in self.candidates(request, provider, fallback):
            req = attrs.evolve(request, model=model, stream=True)
            t0 = time.monotonic()
            sent = []
            try:
                for chunk in self._call("stream", p, req, False):
                    sent.append(chunk.content)
                    yield chunk
            except ProviderError as exc:
                if sent:
                    raise StreamInterrupted(
                        f"stream from {p.name} broke after {len(sent)} chunk(s): {exc.message}",
                        partial="".join(sent), provider=p.name, model=model,
                    ) from exc
                attempts.append(_failed(p, model, exc, time.monotonic() - t0))
                continue
            return
        raise AllProvidersFailed(attempts)

    async def astream(self, request: ChatRequest, provider: str | None = None,
                      fallback: bool | None = None) -> AsyncIterator[StreamChunk]:
        attempts: list[Attempt] = []
        for p, model in self.candidates(request, provider, fallback):
            req = attrs.evolve(request, model=model, stream=True)
            t0 = time.monotonic()
            sent = []
            try:
                async for chunk in self._call("stream", p, req, True):
                    sent.append(chunk.content)
                    yield chunk
            except ProviderError as exc:
                if sent:
                    raise StreamInterrupted(
                        f"stream from {p.name} broke after {len(sent)} chunk(s): {exc.message}",
                        partial="".join(sent), provider=p.name, model=model,
                    ) from exc
                attempts.append(_failed(p, model, exc, time.monotonic() - t0))
                continue
            return
        raise AllProvidersFailed(attempts)

    # -- embeddings and model lists ----------------------------------------------------
    def embed(self, texts: list[str], model: str | None = None,
              provider: str | None = None) -> EmbeddingResponse:
        request = ChatRequest(messages=[], model=model)
        attempts: list[Attempt] = []
        for p, m in self.candidates(request, provider, None):
            t0 = time.monotonic()
            try:
                resp: EmbeddingResponse = self._call_embed(p, texts, m, False)
            except NotImplementedError:
                continue
            except ProviderError as exc:
                attempts.append(_failed(p, m, exc, time.monotonic() - t0))
                continue
            resp.provider = resp.provider or p.name
            return resp
        raise AllProvidersFailed(attempts, message=None if attempts else
                                 "no enabled provider supports embeddings")

    async def aembed(self, texts: list[str], model: str | None = None,
                     provider: str | None = None) -> EmbeddingResponse:
        request = ChatRequest(messages=[], model=model)
        attempts: list[Attempt] = []
        for p, m in self.candidates(request, provider, None):
            t0 = time.monotonic()
            try:
                resp: EmbeddingResponse = await self._call_embed(p, texts, m, True)
            except NotImplementedError:
                continue
            except ProviderError as exc:
                attempts.append(_failed(p, m, exc, time.monotonic() - t0))
                continue
            resp.provider = resp.provider or p.name
            return resp
        raise AllProvidersFailed(attempts, message=None if attempts else
                                 "no enabled provider supports embeddings")

    def _call_embed(self, p: Provider, texts: list[str], model: str | None,
                    is_async: bool) -> Any:
        method = p.aembed if is_async else p.embed
        call = GenerationCall(operation="embed", request=texts, provider=p, is_async=is_async,
                              proceed=lambda t: method(t, model))
        return self.runtime.pm.hook.llmcore_generate(call=call)

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

    # -- bookkeeping -------------------------------------------------------------------
    def _finish(self, resp: ChatResponse, p: Provider, attempts: list[Attempt], start: float,
                t0: float, rid: str, op: str) -> ChatResponse:
        now = time.monotonic()
        ok = Attempt(provider=p.name, model=resp.model, ok=True, duration_s=now - t0)
        attempts.append(ok)
        resp.provider = resp.provider or p.name
        resp.attempts = attempts
        resp.latency_s = now - start
        self._emit_attempt(ok, p, rid, op)
        u = resp.usage or Usage()
        self.runtime.metrics.emit(MetricsEvent(
            kind="request", provider=p.name, plugin=p.type_name, model=resp.model, operation=op,
            input_tokens=u.input_tokens, output_tokens=u.output_tokens, cost_usd=resp.cost_usd,
            latency_s=resp.latency_s, ttft_s=resp.ttft_s, attempts=len(attempts), request_id=rid,
        ))
        return resp

    def _emit_attempt(self, a: Attempt, p: Provider, rid: str, op: str) -> None:
        self.runtime.metrics.emit(MetricsEvent(
            kind="attempt", provider=a.provider, plugin=p.type_name, model=a.model, operation=op,
            outcome="ok" if a.ok else (a.error_type or "error"), status=a.status,
            latency_s=a.duration_s, request_id=rid, message=a.message or None,
        ))

    def _emit_failed(self, attempts: list[Attempt], rid: str, op: str, start: float) -> None:
        self.runtime.metrics.emit(MetricsEvent(
            kind="request", outcome="AllProvidersFailed", operation=op,
            latency_s=time.monotonic() - start, attempts=len(attempts), request_id=rid,
        ))


def _failed(p: Provider, model: str | None, exc: LLMCoreError, duration: float) -> Attempt:
    return Attempt(
        provider=p.name, model=model, ok=False, error_type=type(exc).__name__,
        status=getattr(exc, "status", None), message=exc.message, hint=exc.hint,
        duration_s=duration,
    )
