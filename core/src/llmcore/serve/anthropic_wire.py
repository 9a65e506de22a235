"""Anthropic Messages ↔ llmcore's types (what Claude Code calls).

Pure code (no I/O). :func:`parse_messages_request` turns a ``POST /v1/messages`` body into
a :class:`ChatRequest` (system prompt, text, images, tool use and tool results, tools and
tool choice, sampling); :func:`render_message` and :class:`MessageStream` give the answer
as a message or as the full SSE event sequence (``message_start``, ``content_block_*``,
``message_delta``, ``message_stop``), which the official ``anthropic`` SDK parses.

What cannot be carried to an OpenAI-shaped upstream is refused with a 400 in Anthropic's
error shape (documents, citations, unknown blocks or fields); hints that change no answer
(``cache_control``, ``metadata``, effort and thinking budgets) are dropped, and server
tools (web search, code execution) are left out of the offer and named in the
``X-Llmcore-Dropped-Tools`` header. The answer's reasoning comes back as thinking blocks.
"""

from __future__ import annotations

from typing import Any

from ..types import ChatRequest, ChatResponse, Message, StreamChunk, Usage
from .openai_wire import tool_calls_out
from .wire import (
    WireError,
    as_float,
    as_int,
    as_stop,
    bad_request,
    dumps,
    expect,
    new_id,
    parse_arguments,
)

ERROR_TYPES = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "permission": "permission_error",
    "not_found": "not_found_error",
    "rate_limit": "rate_limit_error",
    "overloaded": "overloaded_error",
    "upstream": "api_error",
    "too_large": "request_too_large",
}
_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
#: Fields that steer how Anthropic's own service runs a request (billing metadata, effort
#: and thinking budgets, context editing, its containers) rather than what the answer says:
#: an OpenAI-shaped upstream has no place for them, so they are dropped; any other unknown
#: field is refused, as the Messages API itself does.
_DROPPED = frozenset(
    {
        "metadata",
        "service_tier",
        "container",
        "mcp_servers",
        "thinking",
        "context_management",
        "output_config",
    }
)


def error_body(err: WireError) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": ERROR_TYPES.get(err.kind, "api_error"), "message": err.message},
    }


def _text_of(value: Any, where: str) -> str:
    """A system prompt or tool result content: a string or a list of text blocks."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    expect(isinstance(value, list), f"{where} must be a string or a list of blocks", where)
    out = []
    for i, b in enumerate(value):
        expect(
            isinstance(b, dict) and b.get("type") == "text",
            f"{where}[{i}]: only text blocks can be carried here",
            where,
        )
        out.append(str(b.get("text", "")))
    return "\n".join(out) if len(out) > 1 else "".join(out)


def _image_url(block: dict[str, Any], where: str) -> str:
    src = block.get("source") or {}
    if src.get("type") == "base64":
        media = src.get("media_type") or "image/png"
        return f"data:{media};base64,{src.get('data', '')}"
    if src.get("type") == "url" and src.get("url"):
        return str(src["url"])
    raise bad_request(
        f"{where}: image source type {src.get('type')!r} cannot be carried; send base64 or url",
        where,
    )


def _tool_result(block: dict[str, Any], where: str) -> Message:
    content = block.get("content")
    images: list[str] = []
    if isinstance(content, list):
        texts = []
        for i, b in enumerate(content):
            kind = b.get("type") if isinstance(b, dict) else None
            if kind == "text":
                texts.append(str(b.get("text", "")))
            elif kind == "image":
                images.append(_image_url(b, f"{where}.content[{i}]"))
            else:
                raise bad_request(
                    f"{where}.content[{i}]: {kind!r} cannot be carried in a tool result", where
                )
        text = "\n".join(texts)
    else:
        text = _text_of(content, f"{where}.content")
    if block.get("is_error"):
        text = f"[tool error] {text}"
    return Message(
        "tool", text, tool_call_id=str(block.get("tool_use_id") or ""), images=images or None
    )


def _turn(m: dict[str, Any], where: str) -> list[Message]:
    role = str(m.get("role"))
    expect(
        role in ("user", "assistant", "system"), f"{where}.role must be user or assistant", where
    )
    content = m.get("content")
    if isinstance(content, str):
        return [Message(role, content)]
    if not isinstance(content, list):
        raise bad_request(f"{where}.content must be a string or a list of blocks", where)
    out: list[Message] = []
    texts: list[str] = []
    images: list[str] = []
    calls: list[dict[str, Any]] = []
    thinking: list[str] = []
    for i, b in enumerate(content):
        w = f"{where}.content[{i}]"
        kind = b.get("type") if isinstance(b, dict) else None
        if kind == "text":
            texts.append(str(b.get("text", "")))
        elif kind == "image":
            images.append(_image_url(b, w))
        elif kind == "tool_use" and role == "assistant":
            calls.append(
                {
                    "id": str(b.get("id") or ""),
                    "type": "function",
                    "function": {
                        "name": str(b.get("name") or ""),
                        "arguments": dumps(b.get("input") or {}),
                    },
                }
            )
        elif kind == "tool_result" and role == "user":
            out.append(_tool_result(b, w))  # tool results answer the previous turn first
        elif kind in ("thinking", "redacted_thinking") and role == "assistant":
            thinking.append(str(b.get("thinking", "")))  # the upstream cannot take it back
        else:
            raise bad_request(f"{w}: a {kind!r} block cannot be carried by this gateway", w)
    if texts or images or calls or not out:
        out.append(
            Message(
                role,
                "".join(texts) if len(texts) < 2 else "\n".join(texts),
                tool_calls=calls or None,
                images=images or None,
            )
        )
    return out


def _tools(raw: Any, dropped: list[str]) -> list[dict[str, Any]] | None:
    """Custom tools, translated; Anthropic's server tools (web search, code execution…) are
    offers an upstream cannot run: left out and named in ``dropped``."""
    if raw is None or raw == []:
        return None
    expect(isinstance(raw, list), "tools must be a list", "tools")
    out = []
    for i, t in enumerate(raw):
        expect(
            isinstance(t, dict) and isinstance(t.get("name"), str),
            f"tools[{i}] needs a name",
            "tools",
        )
        kind = t.get("type")
        if kind not in (None, "custom"):
            dropped.append(t["name"])
            continue
        expect("input_schema" in t, f"tools[{i}] ({t['name']}): input_schema is required", "tools")
        fn: dict[str, Any] = {"name": t["name"], "parameters": t["input_schema"]}
        if t.get("description"):
            fn["description"] = t["description"]
        out.append({"type": "function", "function": fn})
    return out or None


def _tool_choice(raw: Any) -> Any:
    if raw is None:
        return None
    expect(isinstance(raw, dict), "tool_choice must be an object", "tool_choice")
    kind = raw.get("type")
    if kind == "auto":
        return "auto"
    if kind == "any":
        return "required"
    if kind == "none":
        return "none"
    if kind == "tool":
        return {"type": "function", "function": {"name": raw.get("name")}}
    raise bad_request(f"tool_choice.type {kind!r} is unknown", "tool_choice")


def parse_messages_request(
    body: Any, *, counting: bool = False
) -> tuple[ChatRequest, bool, list[str]]:
    """→ (request, stream, names of the server tools left out). ``counting``: a
    count_tokens body (no max_tokens)."""
    expect(isinstance(body, dict), "the body must be a JSON object")
    model = body.get("model")
    expect(isinstance(model, str) and bool(model), "model: Field required", "model")
    raw = body.get("messages")
    expect(
        isinstance(raw, list) and bool(raw),
        "messages: at least one message is required",
        "messages",
    )
    msgs: list[Message] = []
    system = _text_of(body.get("system"), "system")
    if system:
        msgs.append(Message("system", system))
    for i, m in enumerate(raw):
        expect(isinstance(m, dict), f"messages[{i}] must be an object", "messages")
        msgs.extend(_turn(m, f"messages[{i}]"))
    max_tokens = as_int(body.get("max_tokens"), "max_tokens", 1)
    expect(counting or max_tokens is not None, "max_tokens: Field required", "max_tokens")
    extra: dict[str, Any] = {}
    if body.get("top_k") is not None:
        extra["top_k"] = as_int(body.get("top_k"), "top_k")
    known = {
        "model",
        "messages",
        "system",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "tools",
        "tool_choice",
        "stream",
        *_DROPPED,
    }
    unknown = sorted(k for k in body if k not in known)
    expect(
        not unknown,
        f"{unknown[0] if unknown else ''}: Extra inputs are not permitted",
        unknown[0] if unknown else None,
    )
    tool_choice = _tool_choice(body.get("tool_choice"))
    dropped: list[str] = []
    request = ChatRequest(
        messages=msgs,
        model=model,
        max_tokens=max_tokens,
        temperature=as_float(body.get("temperature"), "temperature"),
        top_p=as_float(body.get("top_p"), "top_p"),
        stop=as_stop(body.get("stop_sequences"), "stop_sequences"),
        tools=_tools(body.get("tools"), dropped),
        tool_choice=tool_choice,
        extra=extra,
    )
    if request.tools is None:
        request.tool_choice = None
    stream = bool(body.get("stream"))
    request.stream = stream
    return request, stream, dropped


def count_tokens(request: ChatRequest) -> int:
    """An estimate (~4 characters a token, as llmcore counts when a server sends no usage):
    no upstream offers a tokenizer for every model through one API."""
    chars = sum(len(m.content) for m in request.messages)
    chars += sum(len(dumps(m.tool_calls)) for m in request.messages if m.tool_calls)
    chars += len(dumps(request.tools)) if request.tools else 0
    return max(1, (chars + 3) // 4)


def usage_dict(u: Usage | None) -> dict[str, Any]:
    u = u or Usage()
    cached = u.cached_tokens or 0
    # llmcore counts cached tokens inside input_tokens (OpenAI's way); Anthropic apart.
    return {
        "input_tokens": max(0, u.input_tokens - cached),
        "output_tokens": u.output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def stop_reason(reason: str | None, calls: Any) -> str:
    if calls:
        return "tool_use"
    return _STOP.get(reason or "stop", "end_turn")


def _blocks(text: str, thinking: str | None, calls: Any) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if thinking:
        blocks.append({"type": "thinking", "thinking": thinking, "signature": ""})
    if text or not calls:
        blocks.append({"type": "text", "text": text})
    for c in tool_calls_out(calls) or ():
        blocks.append(
            {
                "type": "tool_use",
                "id": c["id"],
                "name": c["function"]["name"],
                "input": parse_arguments(c["function"]["arguments"]),
            }
        )
    return blocks


def render_message(resp: ChatResponse, model: str) -> dict[str, Any]:
    return {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": _blocks(resp.content, resp.thinking, resp.tool_calls),
        "stop_reason": stop_reason(resp.finish_reason, resp.tool_calls),
        "stop_sequence": None,
        "usage": usage_dict(resp.usage),
    }


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return (
        b"event: " + kind.encode() + b"\ndata: " + dumps({"type": kind, **data}).encode() + b"\n\n"
    )


class MessageStream:
    """Routed chunks → the Messages event sequence. Text and thinking stream as deltas in
    their own blocks; tool calls (assembled by the router) each become a tool_use block
    with its input as one ``input_json_delta``."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = new_id("msg_")
        self.index = -1
        self.open_kind: str | None = None
        self.usage: Usage | None = None
        self.reason: str | None = None
        self.calls: list[dict[str, Any]] | None = None

    def start(self) -> bytes:
        return _sse(
            "message_start",
            {
                "message": {
                    "id": self.id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": usage_dict(None),
                }
            },
        ) + _sse("ping", {})

    def _open(self, kind: str) -> bytes:
        if self.open_kind == kind:
            return b""
        out = self._close()
        self.index += 1
        self.open_kind = kind
        block = (
            {"type": "text", "text": ""}
            if kind == "text"
            else {"type": "thinking", "thinking": "", "signature": ""}
        )
        return out + _sse("content_block_start", {"index": self.index, "content_block": block})

    def _close(self) -> bytes:
        if self.open_kind is None:
            return b""
        out = b""
        if self.open_kind == "thinking":
            out += _sse(
                "content_block_delta",
                {"index": self.index, "delta": {"type": "signature_delta", "signature": ""}},
            )
        self.open_kind = None
        return out + _sse("content_block_stop", {"index": self.index})

    def chunk(self, c: StreamChunk) -> bytes:
        out = b""
        if c.thinking:
            out += self._open("thinking") + _sse(
                "content_block_delta",
                {"index": self.index, "delta": {"type": "thinking_delta", "thinking": c.thinking}},
            )
        if c.content:
            out += self._open("text") + _sse(
                "content_block_delta",
                {"index": self.index, "delta": {"type": "text_delta", "text": c.content}},
            )
        for call in tool_calls_out(c.tool_calls) or ():
            out += self._close()
            self.index += 1
            out += _sse(
                "content_block_start",
                {
                    "index": self.index,
                    "content_block": {
                        "type": "tool_use",
                        "id": call["id"],
                        "name": call["function"]["name"],
                        "input": {},
                    },
                },
            )
            out += _sse(
                "content_block_delta",
                {
                    "index": self.index,
                    "delta": {
                        "type": "input_json_delta",
                        "partial_json": dumps(parse_arguments(call["function"]["arguments"])),
                    },
                },
            )
            out += _sse("content_block_stop", {"index": self.index})
        if c.tool_calls:
            self.calls = c.tool_calls
        if c.usage is not None:
            self.usage = c.usage
        if c.finish_reason:
            self.reason = c.finish_reason
        return out

    def end(self) -> bytes:
        out = b""
        if self.index < 0:  # an empty answer is still one (empty) text block
            out += self._open("text")
        out += self._close()
        u = usage_dict(self.usage)
        return (
            out
            + _sse(
                "message_delta",
                {
                    "delta": {
                        "stop_reason": stop_reason(self.reason, self.calls),
                        "stop_sequence": None,
                    },
                    "usage": u,
                },
            )
            + _sse("message_stop", {})
        )

    def error(self, err: WireError) -> bytes:
        """A failure after the first byte: Anthropic's in-stream ``error`` event (the SDK
        raises it); no ``message_stop`` follows."""
        return _sse("error", error_body(err))
