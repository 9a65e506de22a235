"""What the client adds around a routed call when asked: attachments, a schema, the prompt log.

``Client.chat`` takes the plain router path when none of these is in play, so an ordinary
call pays nothing for them.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .promptlog import PromptLog
    from .types import ChatRequest, ChatResponse, StreamChunk


class Features:
    """Per client: the prompt log (opened on first use) and the wrapped calls."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._log: PromptLog | None = None

    # -- the prompt log ---------------------------------------------------------------------
    def logging(self, log: bool | None) -> bool:
        """Is this call logged? ``log`` wins; otherwise ``logs.enabled``."""
        if log is not None:
            return log
        return bool(self.client.runtime.config.logs.enabled)

    @property
    def log(self) -> PromptLog:
        if self._log is None:
            from .promptlog import PromptLog, log_path

            cfg = self.client.runtime.config
            self._log = PromptLog.from_config(cfg.logs, log_path(cfg))
        return self._log

    def record(
        self, log: bool | None, request: ChatRequest, response: Any = None, **kw: Any
    ) -> None:
        if self.logging(log):
            from .promptlog import entry_of

            self.log.record(entry_of(request, response, **kw))

    def close(self) -> None:
        if self._log is not None:
            self._log.close()

    # -- preparing ----------------------------------------------------------------------------
    @staticmethod
    def prepare(request: ChatRequest, attachments: Sequence[Any] | None) -> list[str]:
        if not attachments:
            return []
        from .attachments import attach

        return [a.describe() for a in attach(request.messages, list(attachments))]

    # -- calls ----------------------------------------------------------------------------------
    def chat(
        self,
        request: ChatRequest,
        route: dict[str, Any],
        *,
        schema: Any = None,
        attachments: Sequence[Any] | None = None,
        log: bool | None = None,
        conversation_id: str | None = None,
        schema_retries: int = 2,
        full: bool = False,
    ) -> Any:
        """A chat with the extras; the parsed object when ``schema`` (with ``full``: the
        pair of the object and the response)."""
        described = self.prepare(request, attachments)
        router = self.client.router
        t0 = time.monotonic()
        meta: dict[str, Any] = {"conversation_id": conversation_id, "attachments": described}
        try:
            if schema is not None:
                from .structured import json_schema, solve

                meta["schema"] = json_schema(schema)
                obj, resp = solve(
                    schema, lambda r: router.chat(r, **route), request, schema_retries
                )
            else:
                obj = resp = router.chat(request, **route)
        except Exception as exc:
            self.record(log, request, None, error=exc, latency_s=time.monotonic() - t0, **meta)
            raise
        self.record(log, request, resp, **meta)
        return (obj, resp) if full else obj

    async def achat(
        self,
        request: ChatRequest,
        route: dict[str, Any],
        *,
        schema: Any = None,
        attachments: Sequence[Any] | None = None,
        log: bool | None = None,
        conversation_id: str | None = None,
        schema_retries: int = 2,
        full: bool = False,
    ) -> Any:
        """The async :meth:`chat`."""
        import asyncio

        described = (
            await asyncio.to_thread(self.prepare, request, attachments) if attachments else []
        )
        router = self.client.router
        t0 = time.monotonic()
        meta: dict[str, Any] = {"conversation_id": conversation_id, "attachments": described}
        try:
            if schema is not None:
                from .structured import asolve, json_schema

                meta["schema"] = json_schema(schema)
                obj, resp = await asolve(
                    schema, lambda r: router.achat(r, **route), request, schema_retries
                )
            else:
                obj = resp = await router.achat(request, **route)
        except Exception as exc:
            self.record(log, request, None, error=exc, latency_s=time.monotonic() - t0, **meta)
            raise
        self.record(log, request, resp, **meta)
        return (obj, resp) if full else obj

    def stream(
        self,
        request: ChatRequest,
        route: dict[str, Any],
        *,
        attachments: Sequence[Any] | None = None,
        log: bool | None = None,
        conversation_id: str | None = None,
    ) -> Iterator[StreamChunk]:
        described = self.prepare(request, attachments)
        inner = self.client.router.stream(request, **route)
        return _LoggedStream(
            self,
            inner,
            request,
            log,
            {"conversation_id": conversation_id, "attachments": described},
        )

    def astream(
        self,
        request: ChatRequest,
        route: dict[str, Any],
        *,
        attachments: Sequence[Any] | None = None,
        log: bool | None = None,
        conversation_id: str | None = None,
    ) -> AsyncIterator[StreamChunk]:
        described = self.prepare(request, attachments)
        inner = self.client.router.astream(request, **route)
        return _ALoggedStream(
            self,
            inner,
            request,
            log,
            {"conversation_id": conversation_id, "attachments": described},
        )


class _Collected:
    """What a stream gave, as a response for the log and for conversations."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.last: Any = None
        self.t0 = time.monotonic()

    def add(self, chunk: Any) -> None:
        if chunk.content:
            self.parts.append(chunk.content)
        self.last = chunk

    def response(self, attempts: list[Any]) -> ChatResponse:
        from .types import ChatResponse, Usage

        last = self.last
        return ChatResponse(
            content="".join(self.parts),
            model=getattr(last, "model", None),
            provider=getattr(last, "provider", None),
            usage=getattr(last, "usage", None) or Usage(),
            finish_reason=getattr(last, "finish_reason", None),
            tool_calls=getattr(last, "tool_calls", None),
            latency_s=time.monotonic() - self.t0,
            attempts=list(attempts),
        )


class _LoggedStream(Iterator["StreamChunk"]):
    """The router's stream, passed through; the whole answer is logged when it ends.

    ``response`` holds the answer once the stream is done (conversations read it)."""

    def __init__(
        self,
        features: Features,
        inner: Any,
        request: ChatRequest,
        log: bool | None,
        meta: dict[str, Any],
    ) -> None:
        self._features = features
        self._inner = inner
        self._request = request
        self._log = log
        self._meta = meta
        self._got = _Collected()
        self.response: ChatResponse | None = None
        self.attempts = inner.attempts

    def __next__(self) -> StreamChunk:
        try:
            chunk: StreamChunk = next(self._inner)
        except StopIteration:
            self._done(None)
            raise
        except Exception as exc:
            self._done(exc)
            raise
        self._got.add(chunk)
        return chunk

    def _done(self, exc: BaseException | None) -> None:
        if self.response is not None:
            return
        self.response = self._got.response(self.attempts)
        self._features.record(
            self._log,
            self._request,
            None if exc else self.response,
            error=exc,
            latency_s=self.response.latency_s,
            **self._meta,
        )

    def close(self) -> None:
        self._inner.close()
        if self.response is None and self._got.parts:  # stopped by the caller (Ctrl-C)
            self._done(None)


class _ALoggedStream(AsyncIterator["StreamChunk"]):
    """The async :class:`_LoggedStream`."""

    def __init__(
        self,
        features: Features,
        inner: Any,
        request: ChatRequest,
        log: bool | None,
        meta: dict[str, Any],
    ) -> None:
        self._sync = _LoggedStream.__new__(_LoggedStream)
        _LoggedStream.__init__(self._sync, features, inner, request, log, meta)
        self.attempts = inner.attempts

    @property
    def response(self) -> ChatResponse | None:
        return self._sync.response

    async def __anext__(self) -> StreamChunk:
        s = self._sync
        try:
            chunk: StreamChunk = await s._inner.__anext__()
        except StopAsyncIteration:
            s._done(None)
            raise
        except Exception as exc:
            s._done(exc)
            raise
        s._got.add(chunk)
        return chunk

    async def aclose(self) -> None:
        s = self._sync
        await s._inner.aclose()
        if s.response is None and s._got.parts:  # stopped by the caller
            s._done(None)
