"""The base class every provider (HTTP backend) plugin subclasses.

A provider is sans-IO: it *describes* each call as an :class:`~llmcore.http.HTTPRequest`
and *reads* the answer with pure code (``chat_request`` / ``parse_chat``, a
``stream_decoder``, ``embed_request`` / ``parse_embed``, ...). This class implements
``chat``/``achat``/``stream``/``astream``/``generate``/``embed``/``aembed``/``models``
once, over the two transports of :mod:`llmcore.http`, so every provider gets the same
limits, deadlines, redirect rule and error mapping, sync and async.

A provider that does its own I/O may still override ``chat``/``stream``/... directly;
its async methods then run the sync ones in a worker thread.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import Any, ClassVar

from .config import ProviderConfig, structure_options
from .errors import BadRequestError, ProviderConnectionError, ProviderError, ResponseError
from .http.decoders import BadPayload, LimitExceeded
from .http.endpoints import Endpoint, server_root
from .http.limits import Limits
from .http.messages import HTTPRequest, HTTPResponse
from .http.status import SNIPPET, answer_error, redirect_error, status_error
from .http.streams import SSEChunks, StreamDecoder
from .types import (
    ChatRequest,
    ChatResponse,
    EmbeddingResponse,
    Health,
    ModelInfo,
    StreamChunk,
)

#: After a stream said it is done, how many more body pieces are read to reach the end of
#: the HTTP body (so the connection goes back to the pool instead of being closed).
_DRAIN_PIECES = 4


def _drain(pieces: Generator[bytes, None, None]) -> None:
    """Read what is left of a finished stream's body (the closing chunk of a chunked
    answer, usually already received); a server that keeps sending is cut off."""
    for i, _ in enumerate(pieces):
        if i >= _DRAIN_PIECES:
            return


async def _adrain(pieces: AsyncGenerator[bytes, None]) -> None:
    i = 0
    async for _ in pieces:
        i += 1
        if i > _DRAIN_PIECES:
            return


def _has_events(decoder: StreamDecoder) -> bool:
    events: int = getattr(decoder, "events", 0)
    return events > 0


def _is_json(headers: Any) -> bool:
    return str(headers.get("content-type", "")).lower().startswith("application/json")


#: The sans-IO builders; a subclass that overrides one is served by the transports.
_BUILDERS = {
    "chat": "chat_request",
    "stream": "chat_request",
    "generate": "generate_request",
    "embed": "embed_request",
    "models": "models_request",
}


class Provider:
    """One configured backend. Subclass it, set ``type_name``, and describe its wire format.

    Implement what the backend can do (each pair is pure code, no I/O):

    * ``chat_request(request, stream)`` → :class:`HTTPRequest`, ``parse_chat(data, request)``
      → :class:`ChatResponse`, and ``stream_decoder(request)`` → a decoder fed the bytes
      of a streamed answer (build it on :class:`llmcore.http.SSEChunks` or
      :class:`~llmcore.http.NDJSONChunks`);
    * ``generate_request`` / ``parse_generate`` (raw text completion),
      ``embed_request`` / ``parse_embed``, ``models_request`` / ``parse_models``;
    * ``error_for_status(response, request)`` for the backend's own error wording (the
      default maps status codes; ``not_found_hint(model)`` customizes the 404 hint).

    Methods a backend cannot serve raise ``NotImplementedError`` and the router skips the
    provider for that operation.
    """

    #: The name users write as ``plugin:`` in ``llmcore.yaml``.
    type_name: ClassVar[str] = ""
    #: ``api`` for HTTP backends; agents serving prompts report ``cli``.
    kind: ClassVar[str] = "api"
    #: Used when the config gives no ``base_url``.
    default_base_url: ClassVar[str | None] = None
    #: The environment variable read for the key when the config names none.
    default_api_key_env: ClassVar[str | None] = None
    #: An attrs class of extra config keys this type accepts, or ``None``.
    Options: ClassVar[type | None] = None
    #: True when the backend runs on the user's machine (its cost is 0).
    local: ClassVar[bool] = True
    #: What a "cannot connect" error tells the user to do.
    start_hint: ClassVar[str] = "start the server, or fix base_url in llmcore.yaml"

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.name = config.name or self.type_name
        self.options: Any = (
            structure_options(self.Options, config.options) if self.Options else None
        )
        self._io_lock = threading.Lock()
        self._transport: Any = None
        self._atransport: Any = None
        self._endpoint: Endpoint | None = None
        self._headers: dict[str, str] | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.base_url!r}>"

    @property
    def base_url(self) -> str | None:
        urls = self.config.base_urls or []
        url = self.config.base_url or (urls[0] if urls else None)
        return (url or self.default_base_url or "").rstrip("/") or None

    @property
    def api_key(self) -> str | None:
        cfg = self.config
        if not cfg.api_key_env and not cfg.api_key and self.default_api_key_env:
            import os

            from .secrets import register_secret

            key = os.environ.get(self.default_api_key_env)
            register_secret(key)
            return key
        return cfg.resolved_api_key()

    @property
    def default_model(self) -> str | None:
        return self.config.models[0] if self.config.models else None

    def model_for(self, request: Any) -> str | None:
        return getattr(request, "model", None) or self.default_model

    def require_model(
        self, request: Any = None, model: str | None = None, what: str = "model"
    ) -> str:
        """The model for a call; a clear error when there is none (never ``null`` sent)."""
        name = (
            model
            or (self.model_for(request) if request is not None else None)
            or self.default_model
        )
        if not name:
            raise BadRequestError(
                f"{self.name}: no {what} given",
                provider=self.name,
                hint=f"pass model=..., or list one under providers.{self.name}.models in "
                "llmcore.yaml",
            )
        return str(name)

    # -- the wire format: pure code a subclass implements -----------------------------
    def request_headers(self) -> dict[str, str]:
        """Headers sent with every call (the key as a Bearer token by default)."""
        from . import __version__

        h = {
            "User-Agent": f"llmcore/{__version__}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        key = self.api_key
        if key:
            h["Authorization"] = f"Bearer {key}"
        return h

    def chat_request(self, request: ChatRequest, stream: bool) -> HTTPRequest:
        raise NotImplementedError(f"{self.type_name} does not support chat")

    def parse_chat(self, data: Any, request: ChatRequest) -> ChatResponse:
        raise NotImplementedError(f"{self.type_name} does not support chat")

    def stream_decoder(self, request: ChatRequest) -> StreamDecoder:
        raise NotImplementedError(f"{self.type_name} does not support streaming")

    def generate_request(self, request: ChatRequest) -> HTTPRequest:
        raise NotImplementedError(f"{self.type_name} does not support text completion")

    def parse_generate(self, data: Any, request: ChatRequest) -> ChatResponse:
        raise NotImplementedError(f"{self.type_name} does not support text completion")

    def embed_request(self, texts: list[str], model: str | None) -> HTTPRequest:
        raise NotImplementedError(f"{self.type_name} does not support embeddings")

    def parse_embed(self, data: Any, texts: list[str], model: str | None) -> EmbeddingResponse:
        raise NotImplementedError(f"{self.type_name} does not support embeddings")

    def models_request(self) -> HTTPRequest:
        raise NotImplementedError

    def parse_models(self, data: Any) -> list[ModelInfo]:
        raise NotImplementedError

    def not_found_hint(self, model: str | None) -> str | None:
        """The hint of a 404 (``None``: the generic one)."""
        return None

    def unreachable_error(
        self, url: str, detail: str, refused: bool = False
    ) -> ProviderConnectionError:
        """The error when the server at ``url`` cannot be reached (``refused``: nothing
        listens there; else DNS, TLS, a reset)."""
        return ProviderConnectionError(
            f"{self.name}: the server at {url} is not reachable: {detail}",
            provider=self.name,
            hint=self.start_hint,
        )

    def error_for_status(self, response: HTTPResponse, request: HTTPRequest) -> ProviderError:
        """The error for an answer with status ≥ 400 (pure: status, headers, body)."""
        return status_error(
            self.name,
            request.model,
            response.status,
            response.body,
            response.headers,
            not_found_hint=self.not_found_hint(request.model),
            retry_after_cap=self.limits.retry_after_cap,
        )

    def decode(self, response: HTTPResponse, request: HTTPRequest) -> Any:
        """The JSON value of a 2xx answer; clear errors for bad UTF-8 and non-JSON."""
        body = response.body
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ResponseError(
                f"{self.name}: the answer is not valid UTF-8 (byte {exc.start}): "
                f"{body[:SNIPPET].decode('utf-8', 'replace')!r}",
                provider=self.name,
                model=request.model,
            ) from None
        try:
            return json.loads(text)
        except ValueError:
            raise ResponseError(
                f"{self.name}: the answer is not JSON: {text[:SNIPPET]!r}",
                provider=self.name,
                model=request.model,
                hint=f"is base_url ({self.base_url}) the API of a {self.type_name} server?",
            ) from None

    def answer_error(self, data: Any, wanted: str, model: str | None = None) -> ResponseError:
        """For parsers: a 200 that is not the answer (names the server's own message)."""
        return answer_error(self.name, data, wanted, model=model)

    # -- transports and where calls go ---------------------------------------------------
    @property
    def limits(self) -> Limits:
        lim: Limits | None = self.__dict__.get("_limits")
        if lim is None:
            n = getattr(self.options, "max_connections", None) or 100
            lim = Limits.from_config(self.config, max_connections=int(n))
            self.__dict__["_limits"] = lim
        return lim

    def endpoint(self) -> Endpoint:
        """Where calls go; override to return a strategy over several servers."""
        return Endpoint(self.base_url or "")

    @property
    def endpoints(self) -> Endpoint:
        if self._endpoint is None:
            self._endpoint = self.endpoint()
        return self._endpoint

    @property
    def headers(self) -> dict[str, str]:
        """Headers for every request; built once (the key is read from the env once)."""
        if self._headers is None:
            self._headers = self.request_headers()
        return self._headers

    @property
    def transport(self) -> Any:
        """The sync transport (httpcore), made on first use."""
        if self._transport is None:
            headers = self.headers
            with self._io_lock:
                if self._transport is None:
                    from .http.sync import SyncTransport

                    self._transport = SyncTransport(
                        self.name,
                        self.limits,
                        headers,
                        tls_url=self.base_url or "",
                        unreachable_hint=self.start_hint,
                        unreachable=self.unreachable_error,
                    )
        return self._transport

    @property
    def atransport(self) -> Any:
        """The async transport (asyncio, HTTP/1.1), made on first use."""
        if self._atransport is None:
            headers = self.headers
            with self._io_lock:
                if self._atransport is None:
                    from .http.aio import AsyncTransport

                    self._atransport = AsyncTransport(
                        self.name,
                        self.limits,
                        headers,
                        tls_url=self.base_url or "",
                        unreachable_hint=self.start_hint,
                        unreachable=self.unreachable_error,
                    )
        return self._atransport

    def _http_url(self, base: str, req: HTTPRequest) -> str:
        return (server_root(base) if req.root else base) + req.path

    def _check_answer(
        self, status: int, headers: Any, body: bytes, url: str, req: HTTPRequest
    ) -> None:
        if status < 300:
            return
        if status < 400:
            raise redirect_error(self.name, status, headers.get("location"), url)
        raise self.error_for_status(HTTPResponse(status, headers, body, url), req)

    # -- sending (sync) ------------------------------------------------------------------
    def send(self, req: HTTPRequest, base: str | None = None) -> HTTPResponse:
        """Send ``req`` to the endpoint (or to ``base``, one of the configured URLs); a 2xx
        answer, or the llmcore error for it."""
        if base is not None:
            resp: HTTPResponse = self.transport.send(req, self._http_url(base, req))
            self._check_answer(resp.status, resp.headers, resp.body, resp.url, req)
            return resp
        ep = self.endpoints
        tries = ep.tries()
        for left in range(tries - 1, -1, -1):
            if tries > 1:
                ep.refresh(self.transport)
            base = ep.pick()
            err: BaseException | None = None
            try:
                resp = self.transport.send(req, self._http_url(base, req))
                self._check_answer(resp.status, resp.headers, resp.body, resp.url, req)
                return resp
            except BaseException as exc:
                err = exc
                if isinstance(exc, ProviderError) and exc.model is None:
                    exc.model = req.model
                if not (left and isinstance(exc, ProviderConnectionError) and ep.can_fail_over()):
                    raise
            finally:
                ep.release(base, err)
        raise AssertionError("unreachable")  # pragma: no cover

    def call(self, req: HTTPRequest, base: str | None = None) -> Any:
        """Send ``req`` and decode the JSON answer."""
        return self.decode(self.send(req, base), req)

    def open_stream(
        self, req: HTTPRequest, json_is_error: bool = False
    ) -> Generator[bytes, None, None]:
        """The body of a streamed answer, piece by piece, after its status was checked."""
        ep = self.endpoints
        tries = ep.tries()
        for left in range(tries - 1, -1, -1):
            if tries > 1:
                ep.refresh(self.transport)
            base = ep.pick()
            err: BaseException | None = None
            started = False
            try:
                answer = self.transport.open(req, self._http_url(base, req))
                try:
                    if answer.status >= 300:
                        body = answer.read_error() if answer.status >= 400 else b""
                        self._check_answer(answer.status, answer.headers, body, answer.url, req)
                    if json_is_error and _is_json(answer.headers):
                        raise self._json_not_stream(answer.read(), answer, req)
                    for piece in answer.pieces():
                        started = True
                        yield piece
                    return
                finally:
                    answer.close()
            except GeneratorExit:
                raise
            except BaseException as exc:
                err = exc
                if isinstance(exc, ProviderError) and exc.model is None:
                    exc.model = req.model
                if started or not (
                    left and isinstance(exc, ProviderConnectionError) and ep.can_fail_over()
                ):
                    raise
            finally:
                ep.release(base, err)

    # -- sending (async) -----------------------------------------------------------------
    async def asend(self, req: HTTPRequest, base: str | None = None) -> HTTPResponse:
        if base is not None:
            resp: HTTPResponse = await self.atransport.send(req, self._http_url(base, req))
            self._check_answer(resp.status, resp.headers, resp.body, resp.url, req)
            return resp
        ep = self.endpoints
        tries = ep.tries()
        for left in range(tries - 1, -1, -1):
            if tries > 1:
                await ep.arefresh(self.atransport)
            base = ep.pick()
            err: BaseException | None = None
            try:
                resp = await self.atransport.send(req, self._http_url(base, req))
                self._check_answer(resp.status, resp.headers, resp.body, resp.url, req)
                return resp
            except BaseException as exc:
                err = exc
                if isinstance(exc, ProviderError) and exc.model is None:
                    exc.model = req.model
                if not (left and isinstance(exc, ProviderConnectionError) and ep.can_fail_over()):
                    raise
            finally:
                ep.release(base, err)
        raise AssertionError("unreachable")  # pragma: no cover

    async def acall(self, req: HTTPRequest, base: str | None = None) -> Any:
        return self.decode(await self.asend(req, base), req)

    async def aopen_stream(
        self, req: HTTPRequest, json_is_error: bool = False
    ) -> AsyncGenerator[bytes, None]:
        ep = self.endpoints
        tries = ep.tries()
        for left in range(tries - 1, -1, -1):
            if tries > 1:
                await ep.arefresh(self.atransport)
            base = ep.pick()
            err: BaseException | None = None
            started = False
            try:
                answer = await self.atransport.open(req, self._http_url(base, req))
                try:
                    if answer.status >= 300:
                        body = await answer.read_error() if answer.status >= 400 else b""
                        self._check_answer(answer.status, answer.headers, body, answer.url, req)
                    if json_is_error and _is_json(answer.headers):
                        raise self._json_not_stream(await answer.read(), answer, req)
                    async for piece in answer.pieces():
                        started = True
                        yield piece
                    return
                finally:
                    answer.close()
            except GeneratorExit:
                raise
            except BaseException as exc:
                err = exc
                if isinstance(exc, ProviderError) and exc.model is None:
                    exc.model = req.model
                if started or not (
                    left and isinstance(exc, ProviderConnectionError) and ep.can_fail_over()
                ):
                    raise
            finally:
                ep.release(base, err)

    def _json_not_stream(self, body: bytes, answer: Any, req: HTTPRequest) -> ProviderError:
        """A stream request answered with one JSON document: an error (its own message)."""
        data = self.decode(HTTPResponse(answer.status, answer.headers, body, answer.url), req)
        return self.answer_error(data, "stream of events", req.model)

    # -- the calls ---------------------------------------------------------------------
    def _sans_io(self, op: str) -> bool:
        """Does this subclass describe ``op`` with a builder (else: its own I/O or none)?"""
        builder = _BUILDERS[op]
        return getattr(type(self), builder) is not getattr(Provider, builder)

    def chat(self, request: ChatRequest) -> ChatResponse:
        t0 = time.monotonic()
        req = self.chat_request(request, False)
        resp = self.parse_chat(self.call(req), request)
        resp.latency_s = time.monotonic() - t0
        return resp

    async def achat(self, request: ChatRequest) -> ChatResponse:
        if not self._sans_io("chat"):
            import asyncio

            return await asyncio.to_thread(self.chat, request)
        t0 = time.monotonic()
        req = self.chat_request(request, False)
        resp = self.parse_chat(await self.acall(req), request)
        resp.latency_s = time.monotonic() - t0
        return resp

    def stream(self, request: ChatRequest) -> Iterator[StreamChunk]:
        req = self.chat_request(request, True)
        decoder = self.stream_decoder(request)
        limit = self.limits.for_call(request.timeout).first_token
        deadline = time.monotonic() + limit
        first = True
        pieces = self.open_stream(req, json_is_error=isinstance(decoder, SSEChunks))
        try:
            for piece in pieces:
                chunks = self._decode_piece(decoder, piece, req)
                if chunks or _has_events(decoder):
                    # Content, or an event of substance (a tool call being assembled
                    # yields nothing yet): the answer has started.
                    first = False
                    yield from chunks
                elif first and time.monotonic() > deadline:
                    raise self._no_first_chunk(limit, req)
                if decoder.done:
                    _drain(pieces)
                    break
        finally:
            pieces.close()  # back to the pool now, not at garbage collection
        yield from self._close_decoder(decoder, req)

    async def astream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        if not self._sans_io("stream"):
            async for chunk in self._threaded_stream(request):
                yield chunk
            return
        req = self.chat_request(request, True)
        decoder = self.stream_decoder(request)
        limit = self.limits.for_call(request.timeout).first_token
        deadline = time.monotonic() + limit
        first = True
        pieces = self.aopen_stream(req, json_is_error=isinstance(decoder, SSEChunks))
        try:
            async for piece in pieces:
                chunks = self._decode_piece(decoder, piece, req)
                if chunks or _has_events(decoder):
                    first = False
                    for chunk in chunks:
                        yield chunk
                elif first and time.monotonic() > deadline:
                    raise self._no_first_chunk(limit, req)
                if decoder.done:
                    await _adrain(pieces)
                    break
        finally:
            await pieces.aclose()
        for chunk in self._close_decoder(decoder, req):
            yield chunk

    def _decode_piece(
        self, decoder: StreamDecoder, piece: bytes, req: HTTPRequest
    ) -> list[StreamChunk]:
        try:
            return decoder.feed(piece)
        except (LimitExceeded, BadPayload) as exc:
            raise self._stream_error(exc, req) from None

    def _close_decoder(self, decoder: StreamDecoder, req: HTTPRequest) -> list[StreamChunk]:
        try:
            return decoder.close()
        except (LimitExceeded, BadPayload) as exc:
            raise self._stream_error(exc, req) from None

    def _stream_error(self, exc: LimitExceeded | BadPayload, req: HTTPRequest) -> ResponseError:
        from .http.failures import TransportFailures

        fail = TransportFailures(self.name)
        url = self._http_url(self.base_url or "", req)
        err = (
            fail.too_large(url, exc) if isinstance(exc, LimitExceeded) else fail.bad_body(url, exc)
        )
        err.model = req.model
        return err

    def _no_first_chunk(self, limit: float, req: HTTPRequest) -> ProviderError:
        from .errors import ProviderTimeoutError

        return ProviderTimeoutError(
            f"{self.name}: no part of the answer arrived within timeout.first_token "
            f"({limit:g}s); the server sent only keep-alives",
            provider=self.name,
            model=req.model,
            hint="raise timeout.first_token for this provider, or check the server's load",
        )

    def generate(self, request: ChatRequest) -> ChatResponse:
        """A raw text completion of ``request.extra['prompt']`` (no chat template)."""
        t0 = time.monotonic()
        req = self.generate_request(request)
        resp = self.parse_generate(self.call(req), request)
        resp.latency_s = time.monotonic() - t0
        return resp

    async def agenerate(self, request: ChatRequest) -> ChatResponse:
        if not self._sans_io("generate"):
            import asyncio

            return await asyncio.to_thread(self.generate, request)
        t0 = time.monotonic()
        req = self.generate_request(request)
        resp = self.parse_generate(await self.acall(req), request)
        resp.latency_s = time.monotonic() - t0
        return resp

    def embed(self, texts: list[str], model: str | None = None) -> EmbeddingResponse:
        req = self.embed_request(texts, model)
        return self.parse_embed(self.call(req), texts, model)

    async def aembed(self, texts: list[str], model: str | None = None) -> EmbeddingResponse:
        if not self._sans_io("embed"):
            import asyncio

            return await asyncio.to_thread(self.embed, texts, model)
        req = self.embed_request(texts, model)
        return self.parse_embed(await self.acall(req), texts, model)

    def models(self) -> list[ModelInfo]:
        if not self._sans_io("models"):
            return [ModelInfo(name=m, provider=self.name) for m in self.config.models]
        return self.parse_models(self.call(self.models_request()))

    async def amodels(self) -> list[ModelInfo]:
        if not self._sans_io("models"):
            import asyncio

            return await asyncio.to_thread(self.models)
        return self.parse_models(await self.acall(self.models_request()))

    def pull(self, model: str, progress: Any = None) -> None:
        """Download ``model`` onto the backend; ``progress(status, done, total)`` is called
        as it goes. Backends that cannot pull raise ``NotImplementedError``."""
        raise NotImplementedError(f"{self.type_name} cannot pull models")

    def health(self) -> Health:
        """One quick probe: is the backend reachable, and what version is it? By default the
        model list is asked for."""
        if not self._sans_io("models"):
            raise NotImplementedError
        t0 = time.monotonic()
        try:
            models = self.models()
        except ProviderError as exc:
            return Health(
                ok=False, latency_s=time.monotonic() - t0, detail=exc.message, hint=exc.hint
            )
        return Health(ok=True, latency_s=time.monotonic() - t0, detail=f"{len(models)} model(s)")

    def close(self) -> None:
        """Release pooled connections."""
        with self._io_lock:
            sync, self._transport = self._transport, None
            aio, self._atransport = self._atransport, None
        if sync is not None:
            sync.close()
        if aio is not None:
            aio.close()

    async def aclose(self) -> None:
        aio = self._atransport
        if aio is not None:
            await aio.aclose()
        self.close()

    async def _threaded_stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        import asyncio

        iterator = await asyncio.to_thread(lambda: iter(self.stream(request)))
        sentinel = object()
        while True:
            chunk = await asyncio.to_thread(next, iterator, sentinel)
            if chunk is sentinel:
                return
            yield chunk  # type: ignore[misc]

    def load(self) -> float | None:
        """How busy the backend is (requests running + waiting), when it can tell."""
        return None
