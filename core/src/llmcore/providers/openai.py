"""The core ``openai`` provider type: any server that speaks the OpenAI HTTP API.

OpenAI itself, llama.cpp, LocalAI, Groq, Together, and the vLLM and LM Studio plugins
(which subclass :class:`OpenAIProvider`). Pure wire code: request bodies out, answers
and SSE events in; :class:`llmcore.Provider` does the I/O. The ``base_url`` of this type
*includes* ``/v1`` (``http://127.0.0.1:8080/v1``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, ClassVar, NoReturn

import attrs

from ..errors import BadRequestError, ResponseError
from ..http.decoders import SSEEvent, SSERun
from ..http.messages import HTTPRequest
from ..http.status import SNIPPET, status_error, token_count
from ..http.streams import SSEChunks
from ..provider import Provider
from ..types import (
    ChatRequest,
    ChatResponse,
    EmbeddingResponse,
    ModelInfo,
    StreamChunk,
    Usage,
)

#: ``ChatRequest`` fields sent as top-level OpenAI parameters when set.
_OPTION_KEYS = (
    "temperature",
    "max_tokens",
    "top_p",
    "stop",
    "seed",
    "response_format",
    "tools",
    "tool_choice",
)


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

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._stream_options_rejected = False

    def request_headers(self) -> dict[str, str]:
        h = super().request_headers()
        h.update(getattr(self.options, "headers", None) or {})
        return h

    def not_found_hint(self, model: str | None) -> str | None:
        return (
            f"list the served models with `llmcore models --provider {self.name}`; "
            "also check that base_url ends with /v1"
        )

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
        body = self._options(
            request,
            {
                "model": self.require_model(request),
                "messages": [_message(m) for m in request.messages],
            },
        )
        if stream:
            body["stream"] = True
            if getattr(self.options, "stream_usage", True) and not self._stream_options_rejected:
                body["stream_options"] = {"include_usage": True}
        if request.extra:
            body.update(request.extra)
            body.pop("prompt", None)  # client.generate's prompt belongs to /completions
        return body

    def completion_body(self, request: ChatRequest) -> dict[str, Any]:
        prompt = request.extra.get("prompt")
        if prompt is None:
            prompt = "\n".join(m.content for m in request.messages)
        body = self._options(request, {"model": self.require_model(request)})
        body.update(request.extra)
        body["prompt"] = prompt
        return body

    def chat_request(self, request: ChatRequest, stream: bool) -> HTTPRequest:
        body = self.chat_body(request, stream)
        return HTTPRequest(
            "POST", "/chat/completions", json=body, model=body.get("model"), timeout=request.timeout
        )

    def generate_request(self, request: ChatRequest) -> HTTPRequest:
        body = self.completion_body(request)
        return HTTPRequest(
            "POST", "/completions", json=body, model=body.get("model"), timeout=request.timeout
        )

    def embed_request(self, texts: list[str], model: str | None) -> HTTPRequest:
        name = self.require_model(model=model, what="embedding model")
        return HTTPRequest(
            "POST",
            "/embeddings",
            model=name,
            json={"model": name, "input": list(texts), "encoding_format": "float"},
        )

    def models_request(self) -> HTTPRequest:
        return HTTPRequest("GET", "/models")

    # -- answers -----------------------------------------------------------------------
    def parse_chat(self, data: Any, request: ChatRequest) -> ChatResponse:
        try:
            choice = data["choices"][0]
            message = choice.get("message") or {}
            if not isinstance(message, dict):
                raise TypeError
        except (KeyError, IndexError, TypeError, AttributeError):
            raise self.answer_error(data, "choices[0].message", self.model_for(request)) from None
        content = message.get("content")
        return ChatResponse(
            content=content if isinstance(content, str) else "",
            model=data.get("model"),
            provider=self.name,
            usage=parse_usage(data.get("usage")),
            finish_reason=choice.get("finish_reason"),
            tool_calls=message.get("tool_calls") or None,
            thinking=message.get("reasoning_content") or message.get("reasoning") or None,
            raw=data,
        )

    def parse_generate(self, data: Any, request: ChatRequest) -> ChatResponse:
        return self.parse_completion(data, 0.0)[0]

    def parse_completion(self, data: Any, latency: float) -> list[ChatResponse]:
        """One response per choice, in ``index`` order. The usage block covers the whole
        request, so it is put on the first response only (sums stay right)."""
        try:
            choices = sorted(data["choices"], key=lambda c: c.get("index", 0))
            texts = [(c["text"], c.get("finish_reason")) for c in choices]
        except (KeyError, TypeError, AttributeError):
            raise self.answer_error(data, "choices[].text") from None
        if not texts:
            raise self.answer_error(data, "choices")
        usage = parse_usage(data.get("usage"))
        return [
            ChatResponse(
                content=text or "",
                model=data.get("model"),
                provider=self.name,
                usage=usage if i == 0 else Usage(),
                finish_reason=finish,
                latency_s=latency,
                raw=data,
            )
            for i, (text, finish) in enumerate(texts)
        ]

    def parse_embed(self, data: Any, texts: list[str], model: str | None) -> EmbeddingResponse:
        try:
            items = sorted(data["data"], key=lambda d: d.get("index", 0))
            vectors = [list(map(float, d["embedding"])) for d in items]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise self.answer_error(data, "data[].embedding", model) from None
        return EmbeddingResponse(
            vectors=vectors,
            model=data.get("model"),
            provider=self.name,
            usage=parse_usage(data.get("usage")),
        )

    def parse_models(self, data: Any) -> list[ModelInfo]:
        try:
            return [self.model_info(m) for m in data["data"]]
        except (KeyError, TypeError, AttributeError):
            raise self.answer_error(data, "data[] (a model list)") from None

    def model_info(self, item: dict[str, Any]) -> ModelInfo:
        """One ``/models`` entry as a ``ModelInfo``; context length when the server says
        (vLLM ``max_model_len``, others ``context_length`` / ``context_window``)."""
        ctx = (
            item.get("max_model_len")
            or item.get("context_length")
            or item.get("context_window")
            or (item.get("meta") or {}).get("n_ctx_train")
        )
        details = {k: v for k, v in item.items() if k not in ("id", "object")}
        return ModelInfo(
            name=item["id"],
            provider=self.name,
            context_length=token_count(ctx) or None if isinstance(ctx, (int, float)) else None,
            details=details,
        )

    def _shape_error(self, data: Any, wanted: str) -> ResponseError:
        return self.answer_error(data, wanted)

    # -- streams -----------------------------------------------------------------------
    def stream_decoder(self, request: ChatRequest) -> OpenAIStream:
        return OpenAIStream(self.name, request, self.limits.max_line_bytes)

    def stream(self, request: ChatRequest) -> Iterator[StreamChunk]:
        try:
            yield from super().stream(request)
        except BadRequestError as exc:
            if not self._drop_stream_options(exc):
                raise
            yield from super().stream(request)

    async def astream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        try:
            async for chunk in super().astream(request):
                yield chunk
        except BadRequestError as exc:
            if not self._drop_stream_options(exc):
                raise
            async for chunk in super().astream(request):
                yield chunk

    def _drop_stream_options(self, exc: BadRequestError) -> bool:
        """A server that rejects ``stream_options`` (a 400 naming it, before any chunk) is
        asked again without it, and never sent it again; usage is then counted."""
        if self._stream_options_rejected or "stream_options" not in exc.message:
            return False
        if not getattr(self.options, "stream_usage", True):
            return False
        self._stream_options_rejected = True
        return True


#: What :meth:`OpenAIStream._value` returns at ``data: [DONE]``.
_DONE: Any = object()


class OpenAIStream(SSEChunks):
    """Turns the SSE events of a chat stream into ``StreamChunk``s and checks it ended
    properly.

    Content is yielded as it arrives; the final chunk carries ``finish_reason``, tool
    calls assembled from their deltas, and usage (the server's, or counted from the stream
    when the server sent none).
    """

    def __init__(self, provider: str, request: ChatRequest, max_event: int) -> None:
        # eager: servers put one JSON object per data line; dispatch it at once rather
        # than wait for the blank line. llama.cpp reports failures as ``error:`` lines.
        super().__init__(max_event, eager=True, fields=("error",))
        self.provider = provider
        self.request = request
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.model: str | None = None
        self.pieces = 0
        self.tools: dict[int, dict[str, Any]] = {}
        self.relay = request.relay

    # -- relay (ChatRequest.relay): every rule above, plus the events' own bytes ----------
    def feed(self, data: bytes) -> list[StreamChunk]:
        if not self.relay:
            return super().feed(data)
        return self._relayed(self.sse.feed_runs(data))

    def close(self) -> list[StreamChunk]:
        if not self.relay:
            return super().close()
        out = [] if self.done else self._relayed(self.sse.close())
        for chunk in self.finish():
            chunk.raw = b""  # the server's own events already carried the end
            out.append(chunk)
        return out

    def _relayed(self, items: Sequence[SSEEvent | SSERun]) -> list[StreamChunk]:
        """The events of one read as one chunk: their text joined, their lines kept.

        Every event is parsed and checked as without relay (errors, usage, finish, tool
        calls), only not one by one: a run of one-line events is parsed in one call, and
        no chunk is made per event. A usage event with no choices comes as a chunk of its
        own (with ``usage``): a gateway forwards it only to a client that asked for usage.
        """
        out: list[StreamChunk] = []
        raw: list[bytes] = []
        text: list[str] = []
        thinking: list[str] = []

        def take(value: dict[str, Any], line: bytes) -> None:
            self.events += 1
            got = self._take(value)
            if value.get("usage") and not value.get("choices"):
                if raw:
                    out.append(self._merged(raw, text, thinking))
                    for pending in (raw, text, thinking):
                        pending.clear()
                out.append(
                    StreamChunk(
                        usage=self.usage, model=self.model, provider=self.provider, raw=line
                    )
                )
                return
            raw.append(line)
            for content, think in got:
                text.append(content)
                thinking.append(think)

        for item in items:
            if isinstance(item, SSERun):
                for line, value in zip(item.lines, item.values, strict=True):
                    # The usual event (one choice, a text or reasoning delta, no error,
                    # usage or tool call) read inline: the same reading as _take's.
                    choices = value.get("choices")
                    if (
                        type(choices) is list
                        and len(choices) == 1
                        and type(choice := choices[0]) is dict
                        and type(delta := choice.get("delta")) is dict
                        and not delta.get("tool_calls")
                        and not value.get("error")
                        and not value.get("usage")
                    ):
                        self.events += 1
                        self.model = value.get("model") or self.model
                        if choice.get("finish_reason"):
                            self.finish_reason = choice["finish_reason"]
                        content = delta.get("content") or ""
                        think = delta.get("reasoning_content") or delta.get("reasoning") or ""
                        if type(content) is not str or type(think) is not str:
                            self._not_text(value)
                        if content or think:
                            self.pieces += 1
                            text.append(content)
                            thinking.append(think)
                        raw.append(line)
                        raw.append(b"\n\n")
                    else:
                        take(value, line + b"\n\n")
                continue
            value = self._value(item)
            if value is _DONE:
                break
            if isinstance(value, dict):  # else not a chunk (nor without relay)
                take(value, b"data: " + item.data.replace("\n", "\ndata: ").encode() + b"\n\n")
        if raw:
            out.append(self._merged(raw, text, thinking))
        return out

    def _merged(self, raw: list[bytes], text: list[str], thinking: list[str]) -> StreamChunk:
        return StreamChunk(
            content="".join(text),
            thinking="".join(thinking),
            model=self.model,
            provider=self.provider,
            raw=b"".join(raw),
        )

    def event(self, ev: SSEEvent) -> list[StreamChunk]:
        value = self._value(ev)
        return [] if value is _DONE else self.payload(value)

    def _value(self, ev: SSEEvent) -> Any:
        """The event's JSON value, or ``_DONE`` at ``[DONE]``; raises on an error event."""
        if ev.event == "error":
            try:
                data = json.loads(ev.data)
            except ValueError:
                data = {"error": {"message": ev.data.strip()}}
            if not isinstance(data, dict) or "error" not in data:
                data = {"error": data}
            self._take(data)  # raises
        if ev.data.strip() == "[DONE]":
            self.done = True
            return _DONE
        try:
            return ev.json()
        except ValueError:
            raise ResponseError(
                f"{self.provider}: a stream event is not valid JSON: {ev.data[:SNIPPET]!r}",
                provider=self.provider,
            ) from None

    def payload(self, event: Any) -> list[StreamChunk]:
        return [
            StreamChunk(
                content=content, thinking=thinking, model=self.model, provider=self.provider
            )
            for content, thinking in self._take(event)
        ]

    def _take(self, event: Any) -> list[tuple[str, str]]:
        """Read one event: raise on an error object, note the model, usage, tool-call
        pieces and finish reason; the text and reasoning of each choice that has some."""
        if not isinstance(event, dict):
            return []
        if event.get("error"):
            err = event["error"]
            msg = err.get("message") if isinstance(err, dict) else str(err)
            code = err.get("code") if isinstance(err, dict) else None
            raise ResponseError(
                f"{self.provider}: the server reported an error mid-stream: {msg}",
                provider=self.provider,
                status=code if isinstance(code, int) else None,
            )
        self.model = event.get("model") or self.model
        if event.get("usage"):
            self.usage = parse_usage(event["usage"])
        out: list[tuple[str, str]] = []
        for choice in event.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta") or {}
            content = delta.get("content") or ""
            thinking = delta.get("reasoning_content") or delta.get("reasoning") or ""
            if not isinstance(content, str) or not isinstance(thinking, str):
                self._not_text(event)
            for tc in delta.get("tool_calls") or ():
                self._tool_delta(tc)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            if content or thinking:
                self.pieces += 1
                out.append((content, thinking))
        return out

    def _not_text(self, event: Any) -> NoReturn:
        raise ResponseError(
            f"{self.provider}: a stream event's content is not text: "
            f"{json.dumps(event)[:SNIPPET]!r}",
            provider=self.provider,
        )

    def _tool_delta(self, tc: dict[str, Any]) -> None:
        slot = self.tools.setdefault(
            int(tc.get("index", len(self.tools))),
            {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
        )
        if tc.get("id"):
            slot["id"] = tc["id"]
        fn = tc.get("function") or {}
        if fn.get("name"):
            slot["function"]["name"] += fn["name"]
        if fn.get("arguments"):
            args = fn["arguments"]
            slot["function"]["arguments"] += args if isinstance(args, str) else json.dumps(args)

    def finish(self) -> list[StreamChunk]:
        """The closing chunk; raises when the stream stopped before the server finished."""
        if not self.done and self.finish_reason is None:
            raise ResponseError(
                f"{self.provider}: the stream ended before the answer was complete "
                f"(no finish_reason and no [DONE]) after {self.pieces} piece(s)",
                provider=self.provider,
                retryable=True,
            )
        usage = self.usage
        if usage is None:
            # No usage block: count output pieces (servers send about one token per
            # event) and estimate the prompt at ~4 characters per token.
            chars = sum(len(m.content or "") for m in self.request.messages)
            usage = Usage(input_tokens=max(1, chars // 4), output_tokens=self.pieces)
        return [
            StreamChunk(
                content="",
                finish_reason=self.finish_reason or "stop",
                usage=usage,
                tool_calls=[self.tools[i] for i in sorted(self.tools)] or None,
                model=self.model,
                provider=self.provider,
            )
        ]


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
            url = (
                img
                if img.startswith(("http://", "https://", "data:"))
                else f"data:image/png;base64,{img}"
            )
            parts.append({"type": "image_url", "image_url": {"url": url}})
        d["content"] = parts
    return d


def parse_usage(u: Any) -> Usage:
    """An OpenAI ``usage`` block as ``Usage`` (zeros when absent; bogus counts are 0)."""
    if not isinstance(u, dict):
        return Usage()
    cached = (u.get("prompt_tokens_details") or {}).get("cached_tokens")
    reasoning = (u.get("completion_tokens_details") or {}).get("reasoning_tokens")
    return Usage(
        input_tokens=token_count(u.get("prompt_tokens")),
        output_tokens=token_count(u.get("completion_tokens")),
        cached_tokens=token_count(cached) if cached is not None else None,
        reasoning_tokens=token_count(reasoning) if reasoning is not None else None,
    )


def raise_for_status(
    provider: str, model: str | None, status: int, text: str, headers: Any
) -> NoReturn:
    """Raise the llmcore error for an HTTP error answer (status ≥ 400)."""
    raise status_error(provider, model, status, text, headers)
