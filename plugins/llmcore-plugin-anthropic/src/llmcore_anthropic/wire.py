"""Anthropic's Messages API wire format, with no I/O: bodies in, llmcore values out.

Everything here is a pure function (or a small state machine fed lines), so it is tested
without a server and stays the same whichever transport carries the bytes:

* :func:`request_body` and :func:`request_headers` build ``POST /v1/messages``;
* :func:`parse_message` reads a non-streamed answer, :class:`MessageStream` a streamed one
  (server-sent events: ``message_start``, ``content_block_start/delta/stop``,
  ``message_delta``, ``message_stop``, ``ping``, ``error``), framed from bytes by
  :class:`EventStream` (llmcore's SSE decoder);
* :func:`error_for` maps an error answer (status, body, headers) onto llmcore's errors;
* :func:`parse_models` reads ``GET /v1/models``.

llmcore's values are OpenAI-shaped (tool calls as ``{"id", "type": "function", "function":
{"name", "arguments": "<json>"}}``, ``finish_reason`` ``stop``/``length``/``tool_calls``);
this module translates both ways.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import llmcore
from llmcore import (
    AuthenticationError,
    BadRequestError,
    ChatRequest,
    ChatResponse,
    Message,
    ModelInfo,
    ModelNotFoundError,
    ProviderError,
    RateLimitError,
    ResponseError,
    SSEChunks,
    SSEEvent,
    StreamChunk,
    Usage,
)

#: The API version sent in ``anthropic-version`` unless the config says otherwise.
API_VERSION = "2023-06-01"
#: Anthropic's stop reasons → llmcore's finish reasons.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
}
#: Anthropic error types that are worth retrying (the same request may work later).
RETRYABLE_TYPES = {"overloaded_error", "api_error", "rate_limit_error"}
#: ``ChatRequest`` fields the Messages API has no parameter for. They are left out of the
#: body (and logged once by the provider) rather than sent to be refused.
UNSUPPORTED = ("seed", "response_format")
SNIPPET = 200


# -- requests ------------------------------------------------------------------------------
def request_headers(
    api_key: str | None, version: str = API_VERSION, beta: list[str] | None = None
) -> dict[str, str]:
    """The headers every call carries (the key in ``x-api-key``, never in a URL)."""
    h = {
        "content-type": "application/json",
        "anthropic-version": version,
        "user-agent": f"llmcore/{llmcore.__version__}",
    }
    if api_key:
        h["x-api-key"] = api_key
    if beta:
        h["anthropic-beta"] = ",".join(beta)
    return h


def request_body(
    request: ChatRequest,
    model: str | None,
    *,
    default_max_tokens: int,
    stream: bool,
    top_k: int | None = None,
    thinking_budget: int | None = None,
    extra_body: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON body of ``POST /v1/messages`` for ``request``.

    System messages go to the top-level ``system``; tool results (role ``tool``) become
    ``tool_result`` blocks of a user turn; assistant tool calls become ``tool_use`` blocks;
    ``max_tokens`` is always sent (the API requires it).
    """
    system = [m.content for m in request.messages if m.role == "system" and m.content]
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": request.max_tokens or default_max_tokens,
        "messages": messages(request.messages),
    }
    if system:
        body["system"] = "\n\n".join(system)
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if top_k is not None:
        body["top_k"] = top_k
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.tools:
        body["tools"] = [tool(t) for t in request.tools]
    if request.tool_choice is not None:
        choice = tool_choice(request.tool_choice)
        if choice is not None:
            body["tool_choice"] = choice
    if thinking_budget:
        body["thinking"] = {"type": "enabled", "budget_tokens": thinking_budget}
    if stream:
        body["stream"] = True
    if extra_body:
        body.update(extra_body)
    if request.extra:
        body.update({k: v for k, v in request.extra.items() if k != "prompt"})
    return body


def messages(msgs: list[Message]) -> list[dict[str, Any]]:
    """llmcore messages → Anthropic turns (consecutive turns of one role are merged, as
    tool results must share the user turn that follows the tool calls)."""
    out: list[dict[str, Any]] = []
    for m in msgs:
        if m.role == "system":
            continue
        role = "assistant" if m.role == "assistant" else "user"
        blocks = content_blocks(m)
        if out and out[-1]["role"] == role:
            out[-1]["content"] = _as_blocks(out[-1]["content"]) + _as_blocks(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return out


def _as_blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def content_blocks(m: Message) -> str | list[dict[str, Any]]:
    """One message's ``content``: a plain string when it is only text, else blocks."""
    if m.role == "tool":
        return [{"type": "tool_result", "tool_use_id": m.tool_call_id or "", "content": m.content}]
    if not m.images and not m.tool_calls:
        return m.content
    blocks: list[dict[str, Any]] = []
    for img in m.images or []:
        blocks.append(image_block(img))
    if m.content:
        blocks.append({"type": "text", "text": m.content})
    for call in m.tool_calls or []:
        fn = call.get("function") or {}
        args = fn.get("arguments") or "{}"
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id") or "",
                "name": fn.get("name") or call.get("name") or "",
                "input": json.loads(args) if isinstance(args, str) else args,
            }
        )
    return blocks


def image_block(img: str) -> dict[str, Any]:
    """An image given as a URL, a ``data:`` URL or bare base64 → an ``image`` block."""
    if img.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": img}}
    media_type, data = "image/png", img
    if img.startswith("data:"):
        head, _, data = img.partition(",")
        media_type = head[5:].split(";")[0] or media_type
    else:
        media_type = _sniff(data) or media_type
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _sniff(b64: str) -> str | None:
    """The media type of base64 image data, from its first bytes."""
    try:
        head = base64.b64decode(b64[:16] + "=" * (-len(b64[:16]) % 4))
    except ValueError:
        return None
    for magic, kind in (
        (b"\x89PNG", "image/png"),
        (b"\xff\xd8", "image/jpeg"),
        (b"GIF8", "image/gif"),
        (b"RIFF", "image/webp"),
    ):
        if head.startswith(magic):
            return kind
    return None


def tool(t: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI-shaped tool (``{"type": "function", "function": {...}}``) → Anthropic's."""
    if "input_schema" in t:  # already Anthropic's shape
        return dict(t)
    fn = t.get("function") or t
    out: dict[str, Any] = {
        "name": fn["name"],
        "input_schema": fn.get("parameters") or {"type": "object", "properties": {}},
    }
    if fn.get("description"):
        out["description"] = fn["description"]
    return out


def tool_choice(choice: Any) -> dict[str, Any] | None:
    """OpenAI's ``tool_choice`` → Anthropic's (``auto``, ``any``, ``none``, ``tool``)."""
    if isinstance(choice, str):
        return {
            "auto": {"type": "auto"},
            "required": {"type": "any"},
            "any": {"type": "any"},
            "none": {"type": "none"},
        }.get(choice)
    if isinstance(choice, Mapping):
        if choice.get("type") in ("auto", "any", "none", "tool"):
            return dict(choice)
        name = (choice.get("function") or {}).get("name")
        if name:
            return {"type": "tool", "name": name}
    return None


# -- answers -------------------------------------------------------------------------------
def usage(u: Any) -> Usage:
    """Anthropic ``usage`` → llmcore ``Usage``.

    Anthropic counts cache reads and writes apart from ``input_tokens``; llmcore (like
    OpenAI) counts them inside, with the cache reads also in ``cached_tokens``, so the
    registry can charge them at the cache-read price.
    """
    if not isinstance(u, Mapping):
        return Usage()
    read = int(u.get("cache_read_input_tokens") or 0)
    written = int(u.get("cache_creation_input_tokens") or 0)
    cached = read if "cache_read_input_tokens" in u else None
    return Usage(
        input_tokens=int(u.get("input_tokens") or 0) + read + written,
        output_tokens=int(u.get("output_tokens") or 0),
        cached_tokens=cached,
    )


def tool_call(block: Mapping[str, Any], arguments: str | None = None) -> dict[str, Any]:
    """A ``tool_use`` block → an OpenAI-shaped tool call."""
    args = arguments if arguments is not None else json.dumps(block.get("input") or {})
    return {
        "id": block.get("id"),
        "type": "function",
        "function": {"name": block.get("name") or "", "arguments": args},
    }


def is_message(data: Any) -> bool:
    """Is ``data`` a ``message`` object (not an error object or anything else)?"""
    return (
        isinstance(data, dict)
        and data.get("type") != "error"
        and isinstance(data.get("content"), list)
    )


def parse_message(data: Any, provider: str, latency: float = 0.0) -> ChatResponse:
    """A non-streamed ``message`` object → ``ChatResponse``."""
    if not is_message(data):
        kind, msg = error_detail(json.dumps(data))
        raise ResponseError(
            f"{provider}: the answer is not an Anthropic message: "
            f"{msg if kind else json.dumps(data)[:SNIPPET]!r}",
            provider=provider,
            hint="is base_url an Anthropic Messages API root (https://api.anthropic.com)?",
        )
    text: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in data["content"]:
        kind = block.get("type")
        if kind == "text":
            text.append(block.get("text") or "")
        elif kind == "thinking":
            thinking.append(block.get("thinking") or "")
        elif kind == "tool_use":
            calls.append(tool_call(block))
    stop = data.get("stop_reason")
    return ChatResponse(
        content="".join(text),
        model=data.get("model"),
        provider=provider,
        usage=usage(data.get("usage")),
        finish_reason=FINISH_REASONS.get(stop, stop) if stop else None,
        tool_calls=calls or None,
        thinking="".join(thinking) or None,
        latency_s=latency,
        raw=data,
    )


class MessageStream:
    """The state of one streamed answer, fed decoded events; returns the chunks to yield.

    Text and thinking are yielded as they come; the closing chunk (from :meth:`end`) has
    ``finish_reason``, the usage of the whole answer and the tool calls, assembled from
    their ``input_json_delta`` pieces. An ``error`` event raises at once; a stream that
    stops before ``message_stop`` raises from :meth:`end`, never returns a short answer.
    """

    def __init__(self, provider: str, model: str | None = None) -> None:
        self.provider = provider
        self.model = model
        self.done = False
        self.stop_reason: str | None = None
        self.usage: dict[str, Any] = {}
        self.blocks: dict[int, dict[str, Any]] = {}
        self.pieces = 0

    def event(self, name: str, ev: dict[str, Any]) -> list[StreamChunk]:
        """One decoded event."""
        if name == "message_start":
            msg = ev.get("message") or {}
            self.model = msg.get("model") or self.model
            self.usage.update(msg.get("usage") or {})
        elif name == "content_block_start":
            block = dict(ev.get("content_block") or {})
            block["_json"] = ""
            self.blocks[int(ev.get("index", len(self.blocks)))] = block
        elif name == "content_block_delta":
            delta = ev.get("delta") or {}
            kind = delta.get("type")
            if kind == "text_delta" and delta.get("text"):
                self.pieces += 1
                return [
                    StreamChunk(content=delta["text"], model=self.model, provider=self.provider)
                ]
            if kind == "thinking_delta" and delta.get("thinking"):
                return [
                    StreamChunk(
                        thinking=delta["thinking"], model=self.model, provider=self.provider
                    )
                ]
            if kind == "input_json_delta":
                block = self.blocks.setdefault(int(ev.get("index", 0)), {"_json": ""})
                block["_json"] += delta.get("partial_json") or ""
        elif name == "message_delta":
            self.stop_reason = (ev.get("delta") or {}).get("stop_reason") or self.stop_reason
            self.usage.update({k: v for k, v in (ev.get("usage") or {}).items() if v is not None})
        elif name == "message_stop":
            self.done = True
        elif name == "error":
            err = ev.get("error") or {}
            raise stream_error(self.provider, self.model, err)
        return []  # ping, content_block_stop, and event types added later

    def tool_calls(self) -> list[dict[str, Any]]:
        out = []
        for i in sorted(self.blocks):
            block = self.blocks[i]
            if block.get("type") == "tool_use":
                out.append(tool_call(block, block["_json"] or "{}"))
        return out

    def end(self) -> StreamChunk:
        """The closing chunk; raises when the stream stopped before ``message_stop``."""
        if not self.done:
            raise ResponseError(
                f"{self.provider}: the stream ended before message_stop "
                f"after {self.pieces} piece(s)",
                provider=self.provider,
                retryable=True,
            )
        stop = self.stop_reason
        return StreamChunk(
            finish_reason=FINISH_REASONS.get(stop, stop) if stop else "stop",
            usage=usage(self.usage),
            tool_calls=self.tool_calls() or None,
            model=self.model,
            provider=self.provider,
        )


class EventStream(SSEChunks):
    """The bytes of a streamed answer → chunks: llmcore's SSE framing (bounded lines,
    UTF-8 checked) around a :class:`MessageStream`."""

    def __init__(self, provider: str, max_event: int, model: str | None = None) -> None:
        super().__init__(max_event)
        self.state = MessageStream(provider, model)

    def event(self, ev: SSEEvent) -> list[StreamChunk]:
        try:
            data = ev.json()
        except ValueError:
            raise ResponseError(
                f"{self.state.provider}: a stream event is not valid JSON: {ev.data[:SNIPPET]!r}",
                provider=self.state.provider,
            ) from None
        if not isinstance(data, dict):
            return []
        out = self.state.event(str(data.get("type") or ev.event), data)
        self.done = self.state.done
        return out

    def finish(self) -> list[StreamChunk]:
        return [self.state.end()]


def stream_error(provider: str, model: str | None, err: Mapping[str, Any]) -> ProviderError:
    """An ``error`` event inside a stream (``overloaded_error`` mid-answer) as an error."""
    kind = str(err.get("type") or "error")
    status = {"overloaded_error": 529, "rate_limit_error": 429, "api_error": 500}.get(kind)
    return ResponseError(
        f"{provider}: the server reported {kind} mid-stream: {err.get('message') or ''}",
        provider=provider,
        model=model,
        status=status,
        retryable=kind in RETRYABLE_TYPES,
    )


# -- errors --------------------------------------------------------------------------------
def error_detail(text: str) -> tuple[str | None, str]:
    """``(error type, message)`` of an Anthropic error body, or the start of any body."""
    try:
        data = json.loads(text)
    except ValueError:
        return None, text[:SNIPPET].strip()
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        return err.get("type"), str(err.get("message") or "")[:500]
    return None, text[:SNIPPET].strip()


def error_for(
    provider: str,
    model: str | None,
    status: int,
    body: bytes | str,
    headers: Mapping[str, str],
    base_url: str | None = None,
    retry_after_cap: float = 3600.0,
) -> ProviderError:
    """The llmcore error for an error answer of the Messages API (status >= 400)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    kind, msg = error_detail(text)
    kw: dict[str, Any] = {"provider": provider, "model": model, "status": status}
    if status in (401, 403) or kind in ("authentication_error", "permission_error"):
        return AuthenticationError(
            f"{provider}: the API refused the credentials ({status}): {msg}",
            hint="check the key: ANTHROPIC_API_KEY, or api_key_env in llmcore.yaml "
            "(and that the variable is exported)",
            **kw,
        )
    if status == 404:
        if base_url and base_url.rstrip("/").endswith("/v1"):
            hint = (
                f"base_url must be the API root without /v1 (llmcore adds /v1/messages): "
                f"use {base_url.rstrip('/')[:-3]}"
            )
        else:
            hint = (
                f"check the model name (`llmcore models --provider {provider}` lists "
                "them), and that base_url is the API root, e.g. https://api.anthropic.com"
            )
        what = f"model {model!r} " if model else ""
        return ModelNotFoundError(f"{provider}: {what}not found (404): {msg}", hint=hint, **kw)
    if status == 429:
        return RateLimitError(
            f"{provider}: rate limited (429): {msg}",
            retry_after=llmcore.parse_retry_after(headers, retry_after_cap),
            **kw,
        )
    if status in (400, 413, 422):
        return BadRequestError(
            f"{provider}: the API rejected the request ({status}, {kind or 'error'}): {msg}", **kw
        )
    retryable = kind in RETRYABLE_TYPES or llmcore.retryable_status(status)
    what = "overloaded" if kind == "overloaded_error" or status == 529 else "server error"
    after = llmcore.parse_retry_after(headers, retry_after_cap) if status in (503, 529) else None
    return ResponseError(
        f"{provider}: {what} {status}: {msg}", retryable=retryable, retry_after=after, **kw
    )


# -- models --------------------------------------------------------------------------------
def parse_models(data: Any, provider: str) -> list[ModelInfo]:
    """``GET /v1/models`` → ``ModelInfo`` (Anthropic's list says no context length)."""
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise ResponseError(
            f"{provider}: the model list is not Anthropic's shape: {json.dumps(data)[:SNIPPET]!r}",
            provider=provider,
        )
    return [
        ModelInfo(
            name=m["id"],
            provider=provider,
            details={k: v for k, v in m.items() if k not in ("id", "type")},
        )
        for m in data["data"]
        if isinstance(m, dict) and m.get("id")
    ]
