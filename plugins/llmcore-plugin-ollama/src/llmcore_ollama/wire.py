"""Ollama's wire format: request bodies out, llmcore values in.

Pure functions (no I/O), so the sync and async transports share every rule: how request
options become Ollama ``options``, how ``response_format`` becomes ``format``, how tool
calls and thinking are read back.
"""

from __future__ import annotations

import json
from typing import Any

from llmcore import (
    ChatRequest,
    ChatResponse,
    Message,
    ModelInfo,
    StreamChunk,
    Usage,
    token_count,
)

#: ChatRequest fields that Ollama takes inside ``options`` (and their Ollama names).
_OPTION_NAMES = {
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "stop": "stop",
    "max_tokens": "num_predict",
}


def ollama_format(response_format: dict[str, Any] | None) -> Any:
    """OpenAI-style ``response_format`` → Ollama ``format`` (``"json"``, a schema, or None).

    Accepted: ``{"type": "json_object"}``, ``{"type": "json_schema", "json_schema":
    {"schema": {...}}}``, ``{"type": "text"}`` (no format), or a bare JSON schema.
    """
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return "json"
    if kind == "text":
        return None
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        return spec.get("schema", spec)
    return response_format  # a JSON schema given directly


def message_to_ollama(m: Message) -> dict[str, Any]:
    """One llmcore message as Ollama wants it (tool-call arguments as objects)."""
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.images:
        out["images"] = list(m.images)
    if m.tool_calls:
        calls = []
        for call in m.tool_calls:
            fn = call.get("function", call)
            args = fn.get("arguments", {})
            if isinstance(args, str):
                try:
                    args = json.loads(args) if args else {}
                except ValueError:
                    args = {"_raw": args}
            calls.append({"function": {"name": fn.get("name", ""), "arguments": args}})
        out["tool_calls"] = calls
    if m.role == "tool" and m.name:
        out["tool_name"] = m.name
    return out


def build_options(request: ChatRequest, defaults: dict[str, Any]) -> dict[str, Any]:
    """Config ``options`` first, then the request's own values (the request wins)."""
    options = dict(defaults)
    for field, name in _OPTION_NAMES.items():
        value = getattr(request, field)
        if value is not None:
            options[name] = value
    extra_options = request.extra.get("options")
    if isinstance(extra_options, dict):
        options.update(extra_options)
    return options


def common_body(
    request: ChatRequest,
    model: str,
    stream: bool,
    *,
    defaults: dict[str, Any],
    keep_alive: Any,
    think: bool | None,
) -> dict[str, Any]:
    """The fields /api/chat and /api/generate share."""
    body: dict[str, Any] = {"model": model, "stream": stream}
    options = build_options(request, defaults)
    if options:
        body["options"] = options
    fmt = ollama_format(request.response_format)
    if fmt is not None:
        body["format"] = fmt
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    if think is not None:
        body["think"] = think
    # ``extra`` goes to the server untouched (options were merged above).
    for key, value in request.extra.items():
        if key not in ("options", "prompt"):
            body[key] = value
    return body


def chat_body(request: ChatRequest, model: str, stream: bool, **kw: Any) -> dict[str, Any]:
    body = common_body(request, model, stream, **kw)
    body["messages"] = [message_to_ollama(m) for m in request.messages]
    if request.tools:
        body["tools"] = request.tools
    return body


def generate_body(request: ChatRequest, model: str, stream: bool, **kw: Any) -> dict[str, Any]:
    """A raw completion: ``request.extra['prompt']`` (else the last user message), no template."""
    prompt = request.extra.get("prompt")
    if prompt is None:
        prompt = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
    body = common_body(request, model, stream, **kw)
    body["prompt"] = prompt
    body.setdefault("raw", True)
    return body


def usage_of(data: dict[str, Any]) -> Usage:
    # token_count: a bogus count (1e999, "x") is 0, never an exception that throws away
    # a complete answer.
    return Usage(
        input_tokens=token_count(data.get("prompt_eval_count")),
        output_tokens=token_count(data.get("eval_count")),
    )


def tool_calls_of(message: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Ollama tool calls → the OpenAI shape llmcore uses everywhere (arguments as JSON text)."""
    calls = message.get("tool_calls")
    if not calls:
        return None
    out = []
    for i, call in enumerate(calls):
        fn = call.get("function") or {}
        args = fn.get("arguments", {})
        out.append(
            {
                "id": call.get("id") or f"call_{i}",
                "type": "function",
                "function": {
                    "name": fn.get("name", ""),
                    "arguments": args if isinstance(args, str) else json.dumps(args),
                },
            }
        )
    return out


def finish_reason_of(data: dict[str, Any], had_tool_calls: bool) -> str:
    reason = data.get("done_reason") or "stop"
    # Ollama says "stop" after tool calls; llmcore follows OpenAI's "tool_calls".
    return "tool_calls" if had_tool_calls and reason == "stop" else str(reason)


def chat_response(data: dict[str, Any], provider: str, latency: float) -> ChatResponse:
    message = data.get("message") or {}
    calls = tool_calls_of(message)
    return ChatResponse(
        content=message.get("content") or "",
        model=data.get("model"),
        provider=provider,
        usage=usage_of(data),
        finish_reason=finish_reason_of(data, bool(calls)),
        tool_calls=calls,
        thinking=message.get("thinking") or None,
        latency_s=latency,
        raw=data,
    )


def generate_response(data: dict[str, Any], provider: str, latency: float) -> ChatResponse:
    return ChatResponse(
        content=data.get("response") or "",
        model=data.get("model"),
        provider=provider,
        usage=usage_of(data),
        finish_reason=finish_reason_of(data, False),
        thinking=data.get("thinking") or None,
        latency_s=latency,
        raw=data,
    )


class StreamState:
    """Turns the NDJSON objects of one /api/chat stream into StreamChunks."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.done = False
        self.had_tool_calls = False

    def chunk(self, data: dict[str, Any]) -> StreamChunk:
        message = data.get("message") or {}
        calls = tool_calls_of(message)
        self.had_tool_calls = self.had_tool_calls or bool(calls)
        out = StreamChunk(
            content=message.get("content") or data.get("response") or "",
            thinking=message.get("thinking") or data.get("thinking") or "",
            tool_calls=calls,
            model=data.get("model"),
            provider=self.provider,
        )
        if data.get("done"):
            self.done = True
            out.finish_reason = finish_reason_of(data, self.had_tool_calls)
            out.usage = usage_of(data)
        return out


def model_info(
    name: str,
    provider: str,
    tag: dict[str, Any] | None,
    show: dict[str, Any] | None,
    loaded: bool | None,
) -> ModelInfo:
    """One ModelInfo from an /api/tags entry and (when it answered) /api/show."""
    details = dict((show or {}).get("details") or (tag or {}).get("details") or {})
    info = (show or {}).get("model_info") or {}
    arch = info.get("general.architecture") or details.get("family")
    context = info.get(f"{arch}.context_length") if arch else None
    if context is None:  # some architectures name it differently; take any *.context_length
        context = next((v for k, v in info.items() if k.endswith(".context_length")), None)
    extra = {k: v for k, v in (tag or {}).items() if k in ("size", "digest", "modified_at")}
    return ModelInfo(
        name=name,
        provider=provider,
        context_length=token_count(context) or None,
        capabilities=list((show or {}).get("capabilities") or []),
        parameter_size=details.get("parameter_size") or None,
        quantization=details.get("quantization_level") or None,
        family=details.get("family") or None,
        loaded=loaded,
        details=extra,
    )
