"""The shared client for OpenAI-compatible servers, and the core ``openai`` provider type.

Every OpenAI-compatible backend (OpenAI itself, llama.cpp, LocalAI, Groq, Together, and the
vLLM and LM Studio plugins, which subclass :class:`OpenAIProvider`) goes through here:

* sync calls use one pooled ``httpx.Client`` per provider instance;
* async calls use one ``aiohttp.ClientSession`` per provider instance *per event loop*
  (created lazily). aiohttp is used because ``httpx.AsyncClient`` loses most of its
  throughput at ~100 requests in flight (see ``bench/bench_async.py``).

Both paths share the request building, the response parsing, the SSE stream state and
the mapping of HTTP failures to llmcore's error hierarchy, so they behave the same.
The ``base_url`` of this type *includes* ``/v1`` (``http://127.0.0.1:8080/v1``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any, ClassVar, NoReturn

import attrs

from .errors import (
    AuthenticationError,
    BadRequestError,
    ModelNotFoundError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    ResponseError,
)
from .provider import Provider
from .types import (
    ChatRequest,
    ChatResponse,
    EmbeddingResponse,
    Health,
    ModelInfo,
    StreamChunk,
    Usage,
)

#: ``ChatRequest`` fields sent as top-level OpenAI parameters when set.
_OPTION_KEYS = ("temperature", "max_tokens", "top_p", "stop", "seed", "response_format",
                "tools", "tool_choice")
#: How much of an unreadable body an error message quotes.
_SNIPPET = 200


@attrs.define
class OpenAIOptions:
    """Extra config keys of the ``openai`` type (and of the types built on it)."""

    #: Ask for a usage block at the end of streams (``stream_options.include_usage``).
    #: Turn off for servers that reject the field; usage is then counted from the stream.
    stream_usage: bool = True
    #: Extra HTTP headers sent with every request (e.g. ``OpenAI-Organization``).
    headers: dict[str, str] = attrs.field(factory=dict)
    #: Keys merged into every request body (server-specific sampling options, etc.).
    extra_body: dict[str, Any] = attrs.field(factory=dict)
    #: Most connections kept open to one server (each of the sync and async pools).
    max_connections: int = 100


class OpenAIProvider(Provider):
    """Any server that speaks the OpenAI HTTP API (``/chat/completions``, ``/completions``,
    ``/embeddings``, ``/models``)."""

    type_name: ClassVar[str] = "openai"
    default_base_url: ClassVar[str | None] = "https://api.openai.com/v1"
    default_api_key_env: ClassVar[str | None] = "OPENAI_API_KEY"
    local: ClassVar[bool] = False
    Options: ClassVar[type | None] = OpenAIOptions
    #: What a "cannot connect" error tells the user to do.
    start_hint: ClassVar[str] = "start the server, or fix base_url in llmcore.yaml"

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._http: Any = None
        self._sessions: dict[Any, Any] = {}  # event loop -> aiohttp.ClientSession
        self._lock = threading.Lock()
        self._headers: dict[str, str] | None = None
        self._root = self.base_url or ""
        self._stream_options_rejected = False

    # -- connections -------------------------------------------------------------------
    @property
    def headers(self) -> dict[str, str]:
        """Headers for every request; built once (the key is read from the env once)."""
        if self._headers is None:
            from . import __version__

            h = {"User-Agent": f"llmcore/{__version__}", "Content-Type": "application/json"}
            key = self.api_key
            if key:
                h["Authorization"] = f"Bearer {key}"
            h.update(getattr(self.options, "headers", None) or {})
            self._headers = h
        return self._headers

    @property
    def http(self) -> Any:
        """The pooled ``httpx.Client`` (sync calls)."""
        if self._http is None:
            with self._lock:
                if self._http is None:
                    import httpx

                    t = self.config.timeout
                    n = getattr(self.options, "max_connections", 100)
                    self._http = httpx.Client(
                        headers=self.headers,
                        verify=ssl_context(self._root),
                        timeout=httpx.Timeout(connect=t.connect, read=t.read, write=t.write,
                                              pool=t.pool),
                        limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
                    )
        return self._http

    def session(self) -> Any:
        """The ``aiohttp.ClientSession`` of the running event loop (async calls).

        A session is bound to the loop it was made on, so each loop gets its own; sessions
        of loops that have since closed are dropped when a new one is made.
        """
        import asyncio

        loop = asyncio.get_running_loop()
        s = self._sessions.get(loop)
        if s is not None and not s.closed:
            return s
        import aiohttp

        t = self.config.timeout
        n = getattr(self.options, "max_connections", 100)
        with self._lock:
            for old_loop in [lp for lp in self._sessions if lp.is_closed()]:
                _abandon(self._sessions.pop(old_loop))
            # aiohttp has no write timeout; ``connect`` covers waiting for a pooled
            # connection plus connecting, ``sock_connect`` the TCP connect alone.
            s = aiohttp.ClientSession(
                headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=None, connect=t.pool + t.connect,
                                              sock_connect=t.connect, sock_read=t.read),
                connector=aiohttp.TCPConnector(limit=n),
            )
            self._sessions[loop] = s
        return s

    def close(self) -> None:
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None
            for s in self._sessions.values():
                _abandon(s)
            self._sessions.clear()

    async def aclose(self) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        s = self._sessions.pop(loop, None)
        if s is not None:
            await s.close()
        self.close()

    # -- where a call goes (the vLLM plugin overrides these to spread over replicas) ----
    def _pick(self) -> str:
        """The base URL (with ``/v1``) of the server for the next call."""
        return self._root

    def _release(self, base: str, error: BaseException | None) -> None:
        """Called once the call to ``base`` is over, with the error if it failed."""

    # -- request bodies ----------------------------------------------------------------
    def _options(self, request: ChatRequest, body: dict[str, Any]) -> dict[str, Any]:
        for key in _OPTION_KEYS:
            value = getattr(request, key)
            if value is not None:
                body[key] = value
        extra_body = getattr(self.options, "extra_body", None)
        if extra_body:
            body.update(extra_body)
        return body

    def chat_body(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        body = self._options(request, {
            "model": self.model_for(request),
            "messages": [_message(m) for m in request.messages],
        })
        if stream:
            body["stream"] = True
            if getattr(self.options, "stream_usage", True) and \
                    not self._stream_options_rejected:
                body["stream_options"] = {"include_usage": True}
        if request.extra:
            body.update(request.extra)
            body.pop("prompt", None)  # client.generate's prompt belongs to /completions
        return body

    def completion_body(self, request: ChatRequest) -> dict[str, Any]:
        prompt = request.extra.get("prompt")
        if prompt is None:
            prompt = "\n".join(m.content for m in request.messages)
        body = self._options(request, {"model": self.model_for(request)})
        body.update(request.extra)
        body["prompt"] = prompt
        return body

    # -- sync transport ----------------------------------------------------------------
    def _call_json(self, method: str, path: str, body: dict[str, Any] | None = None,
                   timeout: float | None = None, base: str | None = None) -> Any:
        """One request that answers JSON; every failure becomes a ``ProviderError``."""
        import httpx

        own = base is None
        base = self._pick() if base is None else base
        url = base + path
        err: BaseException | None = None
        try:
            kw: dict[str, Any] = {}
            if body is not None:
                kw["content"] = json.dumps(body).encode()
            if timeout:
                kw["timeout"] = _httpx_timeout(self.config.timeout, timeout)
            try:
                resp = self.http.request(method, url, **kw)
            except httpx.TimeoutException as exc:
                raise self._timeout(url, exc) from exc
            except httpx.ConnectError as exc:
                raise self._unreachable(url, exc) from exc
            except httpx.TransportError as exc:
                raise self._cut(url, exc, during="while answering") from exc
            if resp.status_code >= 400:
                self._raise_status(resp.status_code, resp.text, resp.headers, body)
            return self._decode(resp.content)
        except BaseException as exc:
            err = exc
            raise
        finally:
            if own:
                self._release(base, err)

    def _stream_lines(self, path: str, body: dict[str, Any],
                      timeout: float | None) -> Generator[str, None, None]:
        import httpx

        base = self._pick()
        url = base + path
        err: BaseException | None = None
        try:
            kw: dict[str, Any] = {}
            if timeout:
                kw["timeout"] = _httpx_timeout(self.config.timeout, timeout)
            req = self.http.build_request("POST", url, content=json.dumps(body).encode(), **kw)
            try:
                resp = self.http.send(req, stream=True)
            except httpx.TimeoutException as exc:
                raise self._timeout(url, exc) from exc
            except httpx.ConnectError as exc:
                raise self._unreachable(url, exc) from exc
            except httpx.TransportError as exc:
                raise self._cut(url, exc, during="while answering") from exc
            try:
                if resp.status_code >= 400:
                    resp.read()
                    self._raise_status(resp.status_code, resp.text, resp.headers, body)
                lines = _Lines()
                try:
                    for data in resp.iter_bytes():  # decoded (gzip from proxies)
                        yield from lines.feed(data)
                except httpx.TimeoutException as exc:
                    raise self._timeout(url, exc, during="reading the stream") from exc
                except httpx.TransportError as exc:
                    raise self._cut(url, exc) from exc
                yield from lines.rest()
            finally:
                resp.close()
        except GeneratorExit:
            raise
        except BaseException as exc:
            err = exc
            raise
        finally:
            self._release(base, err)

    # -- async transport ---------------------------------------------------------------
    async def _acall_json(self, method: str, path: str, body: dict[str, Any] | None = None,
                          timeout: float | None = None, base: str | None = None) -> Any:
        import asyncio

        import aiohttp

        own = base is None
        base = self._pick() if base is None else base
        url = base + path
        err: BaseException | None = None
        try:
            kw: dict[str, Any] = {}
            if body is not None:
                kw["data"] = json.dumps(body).encode()
            if timeout:
                kw["timeout"] = _aiohttp_timeout(self.config.timeout, timeout)
            try:
                async with self.session().request(method, url, **kw) as resp:
                    raw = await resp.read()
                    status = resp.status
                    headers = resp.headers
            except asyncio.TimeoutError as exc:
                raise self._timeout(url, exc) from exc
            except aiohttp.ClientConnectorError as exc:
                raise self._unreachable(url, exc) from exc
            except aiohttp.ClientError as exc:
                raise self._cut(url, exc, during="while answering") from exc
            if status >= 400:
                self._raise_status(status, raw.decode("utf-8", "replace"), headers, body)
            return self._decode(raw)
        except BaseException as exc:
            err = exc
            raise
        finally:
            if own:
                self._release(base, err)

    async def _astream_lines(self, path: str, body: dict[str, Any],
                             timeout: float | None) -> AsyncIterator[str]:
        import asyncio

        import aiohttp

        base = self._pick()
        url = base + path
        err: BaseException | None = None
        try:
            kw: dict[str, Any] = {"data": json.dumps(body).encode()}
            if timeout:
                kw["timeout"] = _aiohttp_timeout(self.config.timeout, timeout)
            try:
                resp = await self.session().request("POST", url, **kw)
            except asyncio.TimeoutError as exc:
                raise self._timeout(url, exc) from exc
            except aiohttp.ClientConnectorError as exc:
                raise self._unreachable(url, exc) from exc
            except aiohttp.ClientError as exc:
                raise self._cut(url, exc, during="while answering") from exc
            try:
                if resp.status >= 400:
                    text = await resp.text(errors="replace")
                    self._raise_status(resp.status, text, resp.headers, body)
                lines = _Lines()
                try:
                    async for data in resp.content.iter_any():
                        for line in lines.feed(data):
                            yield line
                except asyncio.TimeoutError as exc:
                    raise self._timeout(url, exc, during="reading the stream") from exc
                except aiohttp.ClientError as exc:
                    raise self._cut(url, exc) from exc
                for line in lines.rest():
                    yield line
            finally:
                resp.release()
        except GeneratorExit:
            raise
        except BaseException as exc:
            err = exc
            raise
        finally:
            self._release(base, err)

    # -- errors ------------------------------------------------------------------------
    def _timeout(self, url: str, exc: BaseException,
                 during: str = "waiting for the server") -> ProviderTimeoutError:
        return ProviderTimeoutError(
            f"{self.name}: timed out {during} at {_origin(url)} ({type(exc).__name__})",
            provider=self.name, hint="raise timeout in llmcore.yaml, or check the server's load",
        )

    def _unreachable(self, url: str, exc: BaseException) -> ProviderConnectionError:
        return ProviderConnectionError(
            f"{self.name}: the server at {_origin(url)} is not reachable: "
            f"{_short(exc)}", provider=self.name, hint=self.start_hint,
        )

    def _cut(self, url: str, exc: BaseException,
             during: str = "in the middle of a stream") -> ProviderConnectionError:
        return ProviderConnectionError(
            f"{self.name}: the connection to {_origin(url)} broke {during}: {_short(exc)}",
            provider=self.name,
        )

    def _raise_status(self, status: int, text: str, headers: Any,
                      body: dict[str, Any] | None) -> NoReturn:
        model = body.get("model") if body else None
        raise_for_status(self.name, model, status, text, headers)

    def _decode(self, raw: bytes) -> Any:
        try:
            return json.loads(raw)
        except ValueError:
            raise ResponseError(
                f"{self.name}: the server's answer is not valid JSON: "
                f"{raw[:_SNIPPET].decode('utf-8', 'replace')!r}",
                provider=self.name, hint="is base_url pointing at an OpenAI-compatible API "
                                         "(ending in /v1)?",
            ) from None

    # -- chat --------------------------------------------------------------------------
    def chat(self, request: ChatRequest) -> ChatResponse:
        t0 = time.monotonic()
        data = self._call_json("POST", "/chat/completions", self.chat_body(request, False),
                               request.timeout)
        return self.parse_chat(data, time.monotonic() - t0)

    async def achat(self, request: ChatRequest) -> ChatResponse:
        t0 = time.monotonic()
        data = await self._acall_json("POST", "/chat/completions",
                                      self.chat_body(request, False), request.timeout)
        return self.parse_chat(data, time.monotonic() - t0)

    def stream(self, request: ChatRequest) -> Iterator[StreamChunk]:
        body = self.chat_body(request, True)
        try:
            yield from self._stream(request, body)
        except BadRequestError as exc:
            if not self._drop_stream_options(body, exc):
                raise
            yield from self._stream(request, body)

    def _stream(self, request: ChatRequest, body: dict[str, Any]) -> Iterator[StreamChunk]:
        state = _StreamState(self, request)
        lines = self._stream_lines("/chat/completions", body, request.timeout)
        try:
            for line in lines:
                yield from state.line(line)
                if state.done:
                    break
        finally:
            lines.close()  # returns the connection to the pool now, not at garbage collection
        yield state.end()

    async def astream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        body = self.chat_body(request, True)
        try:
            async for chunk in self._astream(request, body):
                yield chunk
        except BadRequestError as exc:
            if not self._drop_stream_options(body, exc):
                raise
            async for chunk in self._astream(request, body):
                yield chunk

    async def _astream(self, request: ChatRequest,
                       body: dict[str, Any]) -> AsyncIterator[StreamChunk]:
        state = _StreamState(self, request)
        lines = self._astream_lines("/chat/completions", body, request.timeout)
        try:
            async for line in lines:
                for chunk in state.line(line):
                    yield chunk
                if state.done:
                    break
        finally:
            await lines.aclose()  # type: ignore[attr-defined]
        yield state.end()

    def _drop_stream_options(self, body: dict[str, Any], exc: BadRequestError) -> bool:
        """A server that rejects ``stream_options`` (a 400 naming it, before any chunk) is
        asked again without it, and never sent it again; usage is then counted."""
        if "stream_options" not in body or "stream_options" not in exc.message:
            return False
        self._stream_options_rejected = True
        del body["stream_options"]
        return True

    def parse_chat(self, data: Any, latency: float) -> ChatResponse:
        try:
            choice = data["choices"][0]
            message = choice.get("message") or {}
        except (KeyError, IndexError, TypeError, AttributeError):
            raise self._shape_error(data, "choices[0].message") from None
        return ChatResponse(
            content=message.get("content") or "",
            model=data.get("model"), provider=self.name,
            usage=parse_usage(data.get("usage")),
            finish_reason=choice.get("finish_reason"),
            tool_calls=message.get("tool_calls") or None,
            thinking=message.get("reasoning_content") or message.get("reasoning") or None,
            latency_s=latency, raw=data,
        )

    def _shape_error(self, data: Any, wanted: str) -> ResponseError:
        return ResponseError(
            f"{self.name}: the answer has no {wanted}: {json.dumps(data)[:_SNIPPET]!r}",
            provider=self.name,
        )

    # -- text completions --------------------------------------------------------------
    def generate(self, request: ChatRequest) -> ChatResponse:
        t0 = time.monotonic()
        data = self._call_json("POST", "/completions", self.completion_body(request),
                               request.timeout)
        return self.parse_completion(data, time.monotonic() - t0)[0]

    async def agenerate(self, request: ChatRequest) -> ChatResponse:
        t0 = time.monotonic()
        data = await self._acall_json("POST", "/completions", self.completion_body(request),
                                      request.timeout)
        return self.parse_completion(data, time.monotonic() - t0)[0]

    def parse_completion(self, data: Any, latency: float) -> list[ChatResponse]:
        """One response per choice, in ``index`` order. The usage block covers the whole
        request, so it is put on the first response only (sums stay right)."""
        try:
            choices = sorted(data["choices"], key=lambda c: c.get("index", 0))
            texts = [(c["text"], c.get("finish_reason")) for c in choices]
        except (KeyError, TypeError, AttributeError):
            raise self._shape_error(data, "choices[].text") from None
        if not texts:
            raise self._shape_error(data, "choices")
        usage = parse_usage(data.get("usage"))
        return [
            ChatResponse(content=text or "", model=data.get("model"), provider=self.name,
                         usage=usage if i == 0 else Usage(), finish_reason=finish,
                         latency_s=latency, raw=data)
            for i, (text, finish) in enumerate(texts)
        ]

    # -- embeddings --------------------------------------------------------------------
    def embed(self, texts: list[str], model: str | None = None) -> EmbeddingResponse:
        data = self._call_json("POST", "/embeddings", self._embed_body(texts, model))
        return self.parse_embeddings(data)

    async def aembed(self, texts: list[str], model: str | None = None) -> EmbeddingResponse:
        data = await self._acall_json("POST", "/embeddings", self._embed_body(texts, model))
        return self.parse_embeddings(data)

    def _embed_body(self, texts: list[str], model: str | None) -> dict[str, Any]:
        return {"model": model or self.default_model, "input": list(texts),
                "encoding_format": "float"}

    def parse_embeddings(self, data: Any) -> EmbeddingResponse:
        try:
            items = sorted(data["data"], key=lambda d: d.get("index", 0))
            vectors = [list(map(float, d["embedding"])) for d in items]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise self._shape_error(data, "data[].embedding") from None
        return EmbeddingResponse(vectors=vectors, model=data.get("model"), provider=self.name,
                                 usage=parse_usage(data.get("usage")))

    # -- models and health -------------------------------------------------------------
    def models(self) -> list[ModelInfo]:
        return self.parse_models(self._call_json("GET", "/models"))

    async def amodels(self) -> list[ModelInfo]:
        return self.parse_models(await self._acall_json("GET", "/models"))

    def parse_models(self, data: Any) -> list[ModelInfo]:
        try:
            items = data["data"]
            return [self.model_info(m) for m in items]
        except (KeyError, TypeError, AttributeError):
            raise self._shape_error(data, "data[] (a model list)") from None

    def model_info(self, item: dict[str, Any]) -> ModelInfo:
        """One ``/models`` entry as a ``ModelInfo``; context length when the server says
        (vLLM ``max_model_len``, others ``context_length`` / ``context_window``)."""
        ctx = (item.get("max_model_len") or item.get("context_length")
               or item.get("context_window") or (item.get("meta") or {}).get("n_ctx_train"))
        details = {k: v for k, v in item.items() if k not in ("id", "object")}
        return ModelInfo(name=item["id"], provider=self.name,
                         context_length=int(ctx) if isinstance(ctx, (int, float)) else None,
                         details=details)

    def health(self) -> Health:
        """Probe ``/models``: reachable, answering, and how many models it serves."""
        t0 = time.monotonic()
        try:
            models = self.models()
        except ProviderError as exc:
            return Health(ok=False, latency_s=time.monotonic() - t0, detail=exc.message,
                          hint=exc.hint)
        return Health(ok=True, latency_s=time.monotonic() - t0,
                      detail=f"{len(models)} model(s)")


# -- streams -------------------------------------------------------------------------------
class _Lines:
    """Split a byte stream into text lines (no length limit, unlike aiohttp's readline)."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[str]:
        buf = self._buf + data
        if b"\n" not in buf:
            self._buf = buf
            return []
        *lines, self._buf = buf.split(b"\n")
        return [ln.rstrip(b"\r").decode("utf-8", "replace") for ln in lines]

    def rest(self) -> list[str]:
        buf, self._buf = self._buf, b""
        return [buf.decode("utf-8", "replace")] if buf.strip() else []


class _StreamState:
    """Turns SSE lines of a chat stream into ``StreamChunk``s and checks it ended properly.

    Content is yielded as it arrives; the final chunk (from :meth:`end`) carries
    ``finish_reason``, tool calls assembled from their deltas, and usage (the server's, or
    counted from the stream when the server sent none).
    """

    def __init__(self, provider: OpenAIProvider, request: ChatRequest) -> None:
        self.provider = provider
        self.request = request
        self.done = False
        self.finish: str | None = None
        self.usage: Usage | None = None
        self.model: str | None = None
        self.pieces = 0
        self.tools: dict[int, dict[str, Any]] = {}
        self.data: list[str] = []

    def line(self, line: str) -> list[StreamChunk]:
        if line.startswith("data:"):
            payload = line[5:].lstrip()
            if payload.strip() == "[DONE]":
                self.done = True
                return []
            self.data.append(payload)
            # Servers put one JSON object on one line; dispatch at once rather than
            # waiting for the blank line, unless the event spans several data lines.
            try:
                event = json.loads("\n".join(self.data))
            except ValueError:
                return []
            self.data.clear()
            return self.event(event)
        if line.startswith("error:"):
            # llama.cpp's server reports a failure inside a stream as an ``error:`` line.
            try:
                event = json.loads(line[6:])
            except ValueError:
                event = {"error": {"message": line[6:].strip()}}
            if not isinstance(event, dict) or "error" not in event:
                event = {"error": event}
            return self.event(event)
        if not line.strip() and self.data:
            text = "\n".join(self.data)
            self.data.clear()
            try:
                event = json.loads(text)
            except ValueError:
                raise ResponseError(
                    f"{self.provider.name}: a stream event is not valid JSON: "
                    f"{text[:_SNIPPET]!r}", provider=self.provider.name) from None
            return self.event(event)
        return []  # comments (": ping"), event:/id: fields, blank separators

    def event(self, event: Any) -> list[StreamChunk]:
        if not isinstance(event, dict):
            return []
        if event.get("error"):
            err = event["error"]
            msg = err.get("message") if isinstance(err, dict) else str(err)
            code = err.get("code") if isinstance(err, dict) else None
            raise ResponseError(f"{self.provider.name}: the server reported an error "
                                f"mid-stream: {msg}", provider=self.provider.name,
                                status=code if isinstance(code, int) else None)
        self.model = event.get("model") or self.model
        if event.get("usage"):
            self.usage = parse_usage(event["usage"])
        out: list[StreamChunk] = []
        for choice in event.get("choices") or ():
            delta = choice.get("delta") or {}
            content = delta.get("content") or ""
            thinking = delta.get("reasoning_content") or delta.get("reasoning") or ""
            for tc in delta.get("tool_calls") or ():
                self._tool_delta(tc)
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]
            if content or thinking:
                self.pieces += 1
                out.append(StreamChunk(content=content, thinking=thinking, model=self.model,
                                       provider=self.provider.name))
        return out

    def _tool_delta(self, tc: dict[str, Any]) -> None:
        slot = self.tools.setdefault(int(tc.get("index", len(self.tools))), {
            "id": None, "type": "function", "function": {"name": "", "arguments": ""}})
        if tc.get("id"):
            slot["id"] = tc["id"]
        fn = tc.get("function") or {}
        if fn.get("name"):
            slot["function"]["name"] += fn["name"]
        if fn.get("arguments"):
            args = fn["arguments"]
            slot["function"]["arguments"] += args if isinstance(args, str) else json.dumps(args)

    def end(self) -> StreamChunk:
        """The closing chunk; raises when the stream stopped before the server finished."""
        if not self.done and self.finish is None:
            raise ResponseError(
                f"{self.provider.name}: the stream ended before the answer was complete "
                f"(no finish_reason and no [DONE]) after {self.pieces} piece(s)",
                provider=self.provider.name, retryable=True,
            )
        usage = self.usage
        if usage is None:
            # No usage block: count output pieces (servers send about one token per
            # event) and estimate the prompt at ~4 characters per token.
            chars = sum(len(m.content or "") for m in self.request.messages)
            usage = Usage(input_tokens=max(1, chars // 4), output_tokens=self.pieces)
        return StreamChunk(content="", finish_reason=self.finish or "stop", usage=usage,
                           tool_calls=[self.tools[i] for i in sorted(self.tools)] or None,
                           model=self.model, provider=self.provider.name)


# -- helpers -------------------------------------------------------------------------------
def _message(m: Any) -> dict[str, Any]:
    """A ``Message`` as OpenAI wants it; by hand, since ``attrs.asdict`` costs ~10x more
    and this runs for every message of every call."""
    d: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.name is not None:
        d["name"] = m.name
    if m.tool_calls is not None:
        d["tool_calls"] = m.tool_calls
    if m.tool_call_id is not None:
        d["tool_call_id"] = m.tool_call_id
    if m.images:
        # OpenAI's vision format: the text and each image (URL or data URL) as parts.
        parts: list[dict[str, Any]] = [{"type": "text", "text": m.content}] if m.content else []
        for img in m.images:
            url = img if img.startswith(("http://", "https://", "data:")) else \
                f"data:image/png;base64,{img}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
        d["content"] = parts
    return d


def parse_usage(u: Any) -> Usage:
    """An OpenAI ``usage`` block as ``Usage`` (zeros when absent)."""
    if not isinstance(u, dict):
        return Usage()
    cached = (u.get("prompt_tokens_details") or {}).get("cached_tokens")
    reasoning = (u.get("completion_tokens_details") or {}).get("reasoning_tokens")
    return Usage(input_tokens=int(u.get("prompt_tokens") or 0),
                 output_tokens=int(u.get("completion_tokens") or 0),
                 cached_tokens=cached, reasoning_tokens=reasoning)


def error_message(text: str) -> str:
    """The human part of an error body: OpenAI ``error.message``, FastAPI ``detail``, or
    the start of the raw text."""
    try:
        data = json.loads(text)
    except ValueError:
        return text[:_SNIPPET].strip()
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:500]
        if isinstance(err, str):
            return err[:500]
        if data.get("message"):
            return str(data["message"])[:500]
        if data.get("detail"):
            return json.dumps(data["detail"])[:500] if not isinstance(data["detail"], str) \
                else data["detail"][:500]
    return text[:_SNIPPET].strip()


def raise_for_status(provider: str, model: str | None, status: int, text: str,
                     headers: Any) -> NoReturn:
    """Raise the llmcore error for an HTTP error answer (status ≥ 400)."""
    msg = error_message(text)
    kw: dict[str, Any] = {"provider": provider, "model": model, "status": status}
    if status in (401, 403):
        raise AuthenticationError(f"{provider}: the server refused the credentials ({status}): "
                                  f"{msg}", hint="check the API key (api_key_env in llmcore.yaml "
                                                 "and that the variable is exported)", **kw)
    if status == 404:
        what = f"model {model!r} " if model else ""
        raise ModelNotFoundError(
            f"{provider}: {what}not found (404): {msg}",
            hint=f"list the served models with `llmcore models --provider {provider}`; "
                 "also check that base_url ends with /v1", **kw)
    if status == 429:
        raise RateLimitError(f"{provider}: rate limited (429): {msg}",
                             retry_after=parse_retry_after(headers), **kw)
    if status in (400, 422):
        raise BadRequestError(f"{provider}: the server rejected the request ({status}): {msg}",
                              **kw)
    raise ResponseError(f"{provider}: server error {status}: {msg}",
                        retryable=status in (408, 500, 502, 503, 504), **kw)


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` (preferred) or ``Retry-After`` (seconds or
    an HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _httpx_timeout(t: Any, read: float) -> Any:
    import httpx

    return httpx.Timeout(connect=t.connect, read=read, write=t.write, pool=t.pool)


_SSL_LOCK = threading.Lock()
_SSL_CONTEXTS: dict[tuple[str | None, ...], Any] = {}


def ssl_context(url: str) -> Any:
    """The ``ssl.SSLContext`` for a client of ``url``, shared by every provider in the process.

    Why: httpx builds a verifying context per client by default, loading the whole CA bundle
    (~30-50 ms), which a provider paid on its first request even for ``http://`` servers.
    For ``https`` the one verifying context is built on first use (CA file from
    ``SSL_CERT_FILE``/``SSL_CERT_DIR`` when set, as httpx does, else certifi's bundle). For
    plain ``http`` the context is never used for the server; it is a bare one that trusts
    no CA, so anything that did try TLS through it (a proxy, a redirect) fails closed.
    """
    import os
    import ssl

    if url.lower().startswith("https:"):
        key: tuple[str | None, ...] = ("https", os.environ.get("SSL_CERT_FILE"),
                                       os.environ.get("SSL_CERT_DIR"))
    else:
        key = ("http",)
    ctx = _SSL_CONTEXTS.get(key)
    if ctx is not None:
        return ctx
    with _SSL_LOCK:
        ctx = _SSL_CONTEXTS.get(key)
        if ctx is None:
            if key[0] == "http":
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, with no CA loaded
            elif key[1]:
                ctx = ssl.create_default_context(cafile=key[1])
            elif key[2]:
                ctx = ssl.create_default_context(capath=key[2])
            else:
                import certifi

                ctx = ssl.create_default_context(cafile=certifi.where())
            _SSL_CONTEXTS[key] = ctx
    return ctx


def _aiohttp_timeout(t: Any, read: float) -> Any:
    """The config's timeouts with ``read`` replaced (a request's own ``timeout``)."""
    import aiohttp

    return aiohttp.ClientTimeout(total=None, connect=t.pool + t.connect, sock_connect=t.connect,
                                 sock_read=read)


def _origin(url: str) -> str:
    """``scheme://host:port/path`` without query (URLs here never carry credentials)."""
    return url.split("?", 1)[0]


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "…"


def _abandon(session: Any) -> None:
    """Release a session without awaiting (its loop may be gone): close its sockets."""
    try:
        connector = session.connector
        if connector is not None and not connector.closed:
            connector._close()  # sync part of close(); avoids an un-awaited coroutine
    except Exception:  # closing is best effort; the sockets die with the loop anyway
        pass
