"""The async half of the Ollama provider: the same calls over aiohttp.

aiohttp rather than httpx's async client because it keeps its throughput with many
requests in flight (see ``bench/bench_ollama.py``). One ``ClientSession`` per provider
instance and event loop, made on first use. The wire rules (bodies, parsing, error
mapping) are shared with the sync half through :mod:`.wire` and :mod:`.errors`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from llmcore import (
    BadRequestError,
    ChatRequest,
    ChatResponse,
    EmbeddingResponse,
    ModelNotFoundError,
    ProviderError,
    StreamChunk,
)

from . import errors, wire


class AsyncCalls:
    """Mixed into :class:`~llmcore_ollama.provider.OllamaProvider` (whose state it uses)."""

    # Provided by the provider class.
    name: str
    config: Any
    options: Any
    _session: Any
    _session_loop: Any
    pull_progress: Any
    _headers: Callable[[], dict[str, str]]
    _model: Callable[[Any], str]
    _body_kw: Callable[[], dict[str, Any]]
    _can_pull: Callable[[], bool]
    _decode: Callable[[bytes, str | None], dict[str, Any]]
    _error: Callable[[str | None, int, str, Any], ProviderError]
    _embed_body: Callable[[list[str], str], dict[str, Any]]
    _embedding: Callable[[dict[str, Any], str], EmbeddingResponse]
    pull: Callable[..., None]
    close: Callable[[], None]

    if TYPE_CHECKING:  # properties of the provider class

        @property
        def base_url(self) -> str | None: ...

        @property
        def cloud(self) -> bool: ...

        @property
        def default_model(self) -> str | None: ...

    async def _asession(self) -> Any:
        import asyncio

        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            import aiohttp

            t = self.config.timeout
            self._session = aiohttp.ClientSession(
                headers=self._headers(),
                timeout=aiohttp.ClientTimeout(total=None, connect=t.connect + t.pool,
                                              sock_connect=t.connect, sock_read=t.read),
                connector=aiohttp.TCPConnector(limit=100))
            self._session_loop = loop
        return self._session

    def _aclient_timeout(self, read: float | None) -> Any:
        if read is None:
            return None
        import aiohttp

        t = self.config.timeout
        return aiohttp.ClientTimeout(total=None, connect=t.connect + t.pool,
                                     sock_connect=t.connect, sock_read=read)

    async def _acall(self, path: str, body: dict[str, Any], *, model: str | None,
                     timeout: float | None = None) -> dict[str, Any]:
        """POST ``body`` and return the decoded JSON answer (errors mapped)."""
        import aiohttp

        session = await self._asession()
        kw: dict[str, Any] = {"data": json.dumps(body).encode()}
        if timeout is not None:
            kw["timeout"] = self._aclient_timeout(timeout)
        try:
            async with session.post(f"{self.base_url}{path}", **kw) as resp:
                raw = await resp.read()
                status, headers = resp.status, resp.headers
        except aiohttp.ClientConnectorError as exc:
            raise errors.not_reachable(self.name, self.base_url or "", str(exc),
                                       cloud=self.cloud, refused=True) from None
        except TimeoutError as exc:
            raise self._atimeout(exc, model, timeout) from None
        except aiohttp.ClientError as exc:
            raise errors.cut(self.name, model, str(exc) or type(exc).__name__) from None
        if status >= 400:
            raise self._error(model, status, raw.decode("utf-8", "replace"), headers)
        return self._decode(raw, model)

    async def _asend(self, path: str, body: dict[str, Any], *, model: str | None,
                     timeout: float | None = None) -> Any:
        """POST ``body`` and return the open response (for streams; errors mapped)."""
        import aiohttp

        session = await self._asession()
        kw: dict[str, Any] = {"data": json.dumps(body).encode()}
        if timeout is not None:
            kw["timeout"] = self._aclient_timeout(timeout)
        try:
            resp = await session.post(f"{self.base_url}{path}", **kw)
        except aiohttp.ClientConnectorError as exc:
            raise errors.not_reachable(self.name, self.base_url or "", str(exc),
                                       cloud=self.cloud, refused=True) from None
        except TimeoutError as exc:
            raise self._atimeout(exc, model, timeout) from None
        except aiohttp.ClientError as exc:
            raise errors.cut(self.name, model, str(exc) or type(exc).__name__) from None
        if resp.status >= 400:
            try:
                text = (await resp.read()).decode("utf-8", "replace")
            except (aiohttp.ClientError, TimeoutError):
                text = ""
            finally:
                resp.release()
            raise self._error(model, resp.status, text, resp.headers)
        return resp

    def _atimeout(self, exc: BaseException, model: str | None,
                  request_timeout: float | None) -> ProviderError:
        phase = "connect" if "connect" in type(exc).__name__.lower() else "read"
        t = self.config.timeout
        seconds = request_timeout if phase == "read" and request_timeout else getattr(t, phase)
        return errors.timed_out(self.name, model, phase, seconds)

    async def _alines(self, resp: Any,
                      model: str | None) -> AsyncGenerator[dict[str, Any], None]:
        import aiohttp

        buf = b""
        try:
            async for piece in resp.content.iter_any():
                buf += piece
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        yield self._decode(line, model)
            if buf.strip():
                yield self._decode(buf, model)
        except TimeoutError as exc:
            raise self._atimeout(exc, model, None) from None
        except aiohttp.ClientError as exc:
            raise errors.cut(self.name, model, str(exc) or type(exc).__name__) from None
        finally:
            resp.release()

    async def _apulling(self, model: str, call: Callable[[], Any]) -> Any:
        try:
            return await call()
        except ModelNotFoundError:
            if not self._can_pull():
                raise
        import asyncio

        await asyncio.to_thread(self.pull, model, self.pull_progress)
        return await call()

    async def achat(self, request: ChatRequest) -> ChatResponse:
        model = self._model(request)
        body = wire.chat_body(request, model, False, **self._body_kw())

        async def once() -> ChatResponse:
            t0 = time.monotonic()
            data = await self._acall("/api/chat", body, model=model, timeout=request.timeout)
            return wire.chat_response(data, self.name, time.monotonic() - t0)

        result: ChatResponse = await self._apulling(model, once)
        return result

    async def astream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        model = self._model(request)
        body = wire.chat_body(request, model, True, **self._body_kw())
        resp = await self._apulling(model, lambda: self._asend(
            "/api/chat", body, model=model, timeout=request.timeout))
        state = wire.StreamState(self.name)
        lines = self._alines(resp, model)
        try:
            async for data in lines:
                yield state.chunk(data)
                if state.done:
                    return
        finally:
            await lines.aclose()
        raise errors.cut(self.name, model, "the stream ended before Ollama's final message")

    async def agenerate(self, request: ChatRequest) -> ChatResponse:
        model = self._model(request)
        body = wire.generate_body(request, model, False, **self._body_kw())

        async def once() -> ChatResponse:
            t0 = time.monotonic()
            data = await self._acall("/api/generate", body, model=model,
                                     timeout=request.timeout)
            return wire.generate_response(data, self.name, time.monotonic() - t0)

        result: ChatResponse = await self._apulling(model, once)
        return result

    async def aembed(self, texts: list[str], model: str | None = None) -> EmbeddingResponse:
        name = model or self.options.embed_model or self.default_model
        if not name:
            raise BadRequestError(f"{self.name}: no embedding model given", provider=self.name,
                                  hint="pass model=, or set options.embed_model")
        body = self._embed_body(texts, name)

        async def once() -> EmbeddingResponse:
            data = await self._acall("/api/embed", body, model=name)
            return self._embedding(data, name)

        result: EmbeddingResponse = await self._apulling(name, once)
        return result

    async def aclose(self) -> None:
        import asyncio

        session, self._session = self._session, None
        if (session is not None and not session.closed
                and self._session_loop is asyncio.get_running_loop()):
            await session.close()
        self.close()
