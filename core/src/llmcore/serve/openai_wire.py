"""OpenAI Chat Completions, Completions, Embeddings and Models ↔ llmcore's types.

Pure code (no I/O). ``parse_*`` turn a request body into a :class:`ChatRequest` (or raise
:class:`WireError` for what cannot be carried); ``render_*`` turn llmcore's answers into the
JSON the official ``openai`` SDK parses; :class:`ChatStream` turns routed stream chunks
into ``chat.completion.chunk`` events.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from ..types import ChatRequest, ChatResponse, EmbeddingResponse, Message, StreamChunk, Usage
from .wire import WireError, as_float, as_int, as_stop, bad_request, dumps, expect, new_id, now

#: Chat fields translated into ChatRequest's own fields (or handled here); anything else is
#: passed to the upstream server untouched in ``ChatRequest.extra``.
_HANDLED = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "temperature",
        "max_tokens",
        "max_completion_tokens",
        "top_p",
        "stop",
        "seed",
        "response_format",
        "tools",
        "tool_choice",
        "n",
        "functions",
        "function_call",
    }
)
_ROLES = ("system", "developer", "user", "assistant", "tool")
#: A relayed stream's ``id`` and ``model`` (top-level string fields of its first event).
_ID = re.compile(rb'"id"\s*:\s*"([^"\\]*)"')
_MODEL = re.compile(rb'"model"\s*:\s*"([^"\\]*)"')

ERROR_TYPES = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "permission": "permission_error",
    "not_found": "not_found_error",
    "rate_limit": "rate_limit_error",
    "overloaded": "rate_limit_error",
    "upstream": "api_error",
    "too_large": "invalid_request_error",
}


@attrs.define
class ChatCall:
    """A parsed chat request and how the client wants the answer."""

    request: ChatRequest
    stream: bool = False
    include_usage: bool = False


def error_body(err: WireError) -> dict[str, Any]:
    code = {
        "not_found": "model_not_found",
        "rate_limit": "rate_limit_exceeded",
        "authentication": "invalid_api_key",
    }.get(err.kind)
    return {
        "error": {
            "message": err.message,
            "type": ERROR_TYPES.get(err.kind, "api_error"),
            "param": err.param,
            "code": code,
        }
    }


# -- requests ----------------------------------------------------------------------------
def _text_parts(content: Any, where: str) -> tuple[str, list[str]]:
    """OpenAI message content (a string or parts) → (text, images)."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    expect(isinstance(content, list), f"{where}.content must be a string or a list of parts", where)
    texts: list[str] = []
    images: list[str] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "input_text", "output_text", "refusal"):
            texts.append(str(part.get("text", part.get("refusal", ""))))
        elif kind == "image_url":
            url = part.get("image_url")
            url = url.get("url") if isinstance(url, dict) else url
            expect(
                isinstance(url, str) and bool(url),
                f"{where}.content[{i}].image_url.url is missing",
                where,
            )
            images.append(str(url))
        else:
            raise bad_request(
                f"{where}.content[{i}]: part type {kind!r} cannot be carried; "
                "send text or image_url parts",
                where,
            )
    return "".join(texts), images


def parse_messages(raw: Any) -> list[Message]:
    expect(isinstance(raw, list) and bool(raw), "messages must be a non-empty list", "messages")
    out: list[Message] = []
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        expect(isinstance(m, dict), f"{where} must be an object", where)
        role = m.get("role")
        expect(role in _ROLES, f"{where}.role must be one of {', '.join(_ROLES)}", where)
        text, images = _text_parts(m.get("content"), where)
        tool_calls = m.get("tool_calls") or None
        if tool_calls is not None:
            expect(isinstance(tool_calls, list), f"{where}.tool_calls must be a list", where)
        out.append(
            Message(
                role="system" if role == "developer" else role,
                content=text,
                name=m.get("name"),
                tool_calls=tool_calls,
                tool_call_id=m.get("tool_call_id"),
                images=images or None,
            )
        )
    return out


def parse_chat(body: Any) -> ChatCall:
    expect(isinstance(body, dict), "the body must be a JSON object")
    model = body.get("model")
    expect(isinstance(model, str) and bool(model), "model is required", "model")
    n = body.get("n")
    expect(n in (None, 1), "n > 1 is not supported by this gateway; send n: 1", "n")
    expect(
        "functions" not in body and "function_call" not in body,
        "the deprecated functions/function_call are not supported; use tools",
        "functions",
    )
    opts = body.get("stream_options") or {}
    expect(isinstance(opts, dict), "stream_options must be an object", "stream_options")
    tools = body.get("tools") or None
    if tools is not None:
        expect(isinstance(tools, list), "tools must be a list", "tools")
    fmt = body.get("response_format")
    if fmt is not None:
        expect(
            isinstance(fmt, dict) and "type" in fmt,
            "response_format must be an object with a type",
            "response_format",
        )
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    request = ChatRequest(
        messages=parse_messages(body.get("messages")),
        model=model,
        temperature=as_float(body.get("temperature"), "temperature"),
        max_tokens=as_int(max_tokens, "max_tokens", 1),
        top_p=as_float(body.get("top_p"), "top_p"),
        stop=as_stop(body.get("stop"), "stop"),
        seed=as_int(body.get("seed"), "seed", -(2**63)),
        response_format=fmt,
        tools=tools,
        tool_choice=body.get("tool_choice"),
        extra={k: v for k, v in body.items() if k not in _HANDLED},
    )
    stream = bool(body.get("stream"))
    request.stream = stream
    return ChatCall(request, stream, bool(opts.get("include_usage")))


def parse_completion(body: Any) -> tuple[ChatRequest, bool]:
    """A ``/v1/completions`` body → a request whose ``extra['prompt']`` is the prompt."""
    expect(isinstance(body, dict), "the body must be a JSON object")
    model = body.get("model")
    expect(isinstance(model, str) and bool(model), "model is required", "model")
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    expect(
        isinstance(prompt, str),
        "prompt must be one string (token arrays and batches are not supported)",
        "prompt",
    )
    expect(body.get("n") in (None, 1), "n > 1 is not supported; send n: 1", "n")
    expect(
        not body.get("stream"),
        "streamed /v1/completions is not supported; use stream: false or /v1/chat/completions",
        "stream",
    )
    handled = {
        "model",
        "prompt",
        "stream",
        "n",
        "max_tokens",
        "temperature",
        "top_p",
        "stop",
        "seed",
    }
    request = ChatRequest(
        messages=[Message("user", prompt)],
        model=model,
        temperature=as_float(body.get("temperature"), "temperature"),
        max_tokens=as_int(body.get("max_tokens"), "max_tokens", 1),
        top_p=as_float(body.get("top_p"), "top_p"),
        stop=as_stop(body.get("stop"), "stop"),
        seed=as_int(body.get("seed"), "seed", -(2**63)),
        extra={k: v for k, v in body.items() if k not in handled},
    )
    request.extra["prompt"] = prompt
    return request, False


def parse_embeddings(body: Any) -> tuple[list[str], str, str]:
    """→ (texts, model, encoding_format)."""
    expect(isinstance(body, dict), "the body must be a JSON object")
    model = body.get("model")
    expect(isinstance(model, str) and bool(model), "model is required", "model")
    texts = body.get("input")
    if isinstance(texts, str):
        texts = [texts]
    expect(
        isinstance(texts, list) and bool(texts) and all(isinstance(t, str) for t in texts),
        "input must be a string or a non-empty list of strings",
        "input",
    )
    fmt = body.get("encoding_format") or "float"
    expect(fmt in ("float", "base64"), "encoding_format must be float or base64", "encoding_format")
    return list(texts), model, fmt


# -- answers -----------------------------------------------------------------------------
def usage_dict(u: Usage) -> dict[str, Any]:
    d: dict[str, Any] = {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
    }
    if u.cached_tokens is not None:
        d["prompt_tokens_details"] = {"cached_tokens": u.cached_tokens}
    if u.reasoning_tokens is not None:
        d["completion_tokens_details"] = {"reasoning_tokens": u.reasoning_tokens}
    return d


def finish_reason(reason: str | None, tool_calls: Any) -> str:
    if reason in ("stop", "length", "tool_calls", "content_filter", "function_call"):
        return reason
    return "tool_calls" if tool_calls else "stop"


def tool_calls_out(calls: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """llmcore's tool calls (OpenAI-shaped already) with the fields the SDK requires."""
    if not calls:
        return None
    out = []
    for i, c in enumerate(calls):
        fn = c.get("function") or {}
        args = fn.get("arguments")
        if not isinstance(args, str):
            args = dumps(args or {})
        out.append(
            {
                "id": c.get("id") or f"call_{i}",
                "type": "function",
                "function": {"name": fn.get("name", ""), "arguments": args},
            }
        )
    return out


def render_chat(resp: ChatResponse, model: str) -> dict[str, Any]:
    calls = tool_calls_out(resp.tool_calls)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": resp.content if resp.content or not calls else None,
    }
    if calls:
        message["tool_calls"] = calls
    if resp.thinking:
        message["reasoning_content"] = resp.thinking
    return {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": now(),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(resp.finish_reason, calls),
            }
        ],
        "usage": usage_dict(resp.usage),
    }


def render_completion(resp: ChatResponse, model: str) -> dict[str, Any]:
    return {
        "id": new_id("cmpl-"),
        "object": "text_completion",
        "created": now(),
        "model": model,
        "choices": [
            {
                "index": 0,
                "text": resp.content,
                "logprobs": None,
                "finish_reason": finish_reason(resp.finish_reason, None),
            }
        ],
        "usage": usage_dict(resp.usage),
    }


def render_embeddings(resp: EmbeddingResponse, model: str, fmt: str) -> dict[str, Any]:
    import base64
    import struct

    data = []
    for i, vec in enumerate(resp.vectors):
        emb: Any = vec
        if fmt == "base64":
            emb = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
        data.append({"object": "embedding", "index": i, "embedding": emb})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {
            "prompt_tokens": resp.usage.input_tokens,
            "total_tokens": resp.usage.input_tokens,
        },
    }


def render_models(names: list[str]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": n, "object": "model", "created": 0, "owned_by": "llmcore"} for n in names],
    }


class ChatStream:
    """Routed chunks → ``chat.completion.chunk`` SSE lines, in the order the SDK expects:
    a role delta first, content deltas, tool calls, the finish chunk, then (if asked) a
    usage chunk with no choices, then ``[DONE]``."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.model = model
        self.include_usage = include_usage
        self.id = new_id("chatcmpl-")
        self.created = now()
        self.started = False
        self.finished = False
        self.usage: Usage | None = None
        self.usage_sent = False  # a relayed stream forwarded the upstream's usage event

    def _event(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return self._line(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
        )

    @staticmethod
    def _line(data: dict[str, Any]) -> bytes:
        return b"data: " + dumps(data).encode() + b"\n\n"

    def chunk(self, c: StreamChunk) -> bytes:
        if c.raw is not None:
            return self._relayed(c, c.raw)
        out = b""
        if not self.started:
            self.started = True
            out += self._event({"role": "assistant", "content": ""})
        if c.thinking:
            out += self._event({"reasoning_content": c.thinking})
        if c.content:
            out += self._event({"content": c.content})
        calls = tool_calls_out(c.tool_calls)
        if calls:
            out += self._event(
                {"tool_calls": [{"index": i, **call} for i, call in enumerate(calls)]}
            )
        if c.usage is not None:
            self.usage = c.usage
        if c.finish_reason and not self.finished:
            self.finished = True
            out += self._event({}, finish_reason(c.finish_reason, c.tool_calls))
        return out

    def _relayed(self, c: StreamChunk, raw: bytes) -> bytes:
        """A chunk the provider relays (``ChatRequest.relay``): the upstream's own events,
        role header and finish included, go out as they came. Its usage event goes only to
        a client that asked for usage; the closing chunk (``raw == b""``) adds nothing."""
        if not self.started and raw:
            self.started = self.finished = True
            # the events this encoder still writes (a usage chunk) carry the upstream's
            # id and model, so that every chunk of the stream agrees
            first = raw[: raw.find(b"\n\n")]
            for pattern, attr in ((_ID, "id"), (_MODEL, "model")):
                got = pattern.search(first)
                if got is not None:
                    setattr(self, attr, got[1].decode("utf-8", "replace"))
        if c.usage is not None:
            self.usage = c.usage
            if raw:  # the upstream's usage event
                self.usage_sent = True
                return raw if self.include_usage else b""
        return raw

    def end(self) -> bytes:
        out = b""
        if not self.started:
            out += self._event({"role": "assistant", "content": ""})
        if not self.finished:
            out += self._event({}, "stop")
        if self.include_usage and not self.usage_sent:
            out += self._line(
                {
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": usage_dict(self.usage or Usage()),
                }
            )
        return out + b"data: [DONE]\n\n"

    def error(self, err: WireError) -> bytes:
        """A failure after the first byte: the SDK raises on an ``error`` object in the
        stream; no ``[DONE]`` follows, so no client can take the answer as complete."""
        return self._line(error_body(err))
