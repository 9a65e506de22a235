"""OpenAI Responses ↔ llmcore's types (what Codex calls).

Pure code (no I/O). :func:`parse_responses_request` turns a ``POST /v1/responses`` body
(instructions, input messages, function calls and their outputs, function tools, text
format) into a :class:`ChatRequest`; :func:`render_response` and :class:`ResponseStream`
give the answer as a response object or as the streamed events (``response.created`` …
``response.completed``) the official ``openai`` SDK parses.

The gateway keeps no conversation state: ``previous_response_id`` is refused with a 400
(send the whole input, as Codex does with ``store: false``). Reasoning items sent back by
a client are dropped (an upstream chat model cannot take them back); hosted tools (web
search, file search…) and tool namespaces are left out of what the upstream is offered and
named in the ``X-Llmcore-Dropped-Tools`` header.
"""

from __future__ import annotations

from typing import Any

from ..types import ChatRequest, ChatResponse, Message, StreamChunk, Usage
from .openai_wire import ERROR_TYPES as _OPENAI_TYPES
from .openai_wire import tool_calls_out
from .wire import WireError, as_float, as_int, bad_request, dumps, expect, new_id, now

_HANDLED = frozenset(
    {
        "model",
        "input",
        "instructions",
        "stream",
        "tools",
        "tool_choice",
        "max_output_tokens",
        "temperature",
        "top_p",
        "text",
        "parallel_tool_calls",
        "store",
        "reasoning",
        "include",
        "metadata",
        "previous_response_id",
        "user",
        "prompt_cache_key",
        "service_tier",
        "truncation",
        "stream_options",
        "safety_identifier",
        "client_metadata",
    }
)


def error_body(err: WireError) -> dict[str, Any]:
    return {
        "error": {
            "message": err.message,
            "type": _OPENAI_TYPES.get(err.kind, "api_error"),
            "param": err.param,
            "code": None,
        }
    }


def _content(content: Any, where: str) -> tuple[str, list[str]]:
    if isinstance(content, str):
        return content, []
    expect(isinstance(content, list), f"{where}.content must be a string or a list", where)
    texts: list[str] = []
    images: list[str] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text", "summary_text"):
            texts.append(str(part.get("text", "")))
        elif kind == "refusal":
            texts.append(str(part.get("refusal", "")))
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            images.append(part["image_url"])
        else:
            raise bad_request(
                f"{where}.content[{i}]: {kind!r} cannot be carried by this "
                "gateway (text and input_image with an image_url can)",
                where,
            )
    return "".join(texts), images


def _input(raw: Any) -> list[Message]:
    if isinstance(raw, str):
        return [Message("user", raw)]
    expect(
        isinstance(raw, list) and bool(raw), "input must be a string or a non-empty list", "input"
    )
    out: list[Message] = []
    for i, item in enumerate(raw):
        where = f"input[{i}]"
        expect(isinstance(item, dict), f"{where} must be an object", "input")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            expect(
                role in ("user", "assistant", "system", "developer"),
                f"{where}.role must be user, assistant, system or developer",
                "input",
            )
            text, images = _content(item.get("content"), where)
            out.append(
                Message("system" if role == "developer" else role, text, images=images or None)
            )
        elif kind == "function_call":
            call = {
                "id": str(item.get("call_id") or item.get("id") or ""),
                "type": "function",
                "function": {
                    "name": str(item.get("name") or ""),
                    "arguments": str(item.get("arguments") or ""),
                },
            }
            last = out[-1] if out else None
            if last is not None and last.role == "assistant" and last.tool_calls is not None:
                last.tool_calls.append(call)  # parallel calls: one assistant turn
            else:
                out.append(Message("assistant", "", tool_calls=[call]))
        elif kind == "function_call_output":
            output = item.get("output")
            if not isinstance(output, str):
                output, _ = (
                    _content(output, where) if isinstance(output, list) else (dumps(output), [])
                )
            out.append(Message("tool", output, tool_call_id=str(item.get("call_id") or "")))
        elif kind == "reasoning":
            continue  # the upstream chat model cannot take its reasoning back
        else:
            raise bad_request(
                f"{where}: an item of type {kind!r} cannot be carried by this gateway", "input"
            )
    return out


def _tools(raw: Any, dropped: list[str]) -> list[dict[str, Any]] | None:
    """Function tools, translated. Hosted tools (web search, file search…) and namespaces of
    tools are offers an upstream chat model cannot take: they are left out and named in
    ``dropped`` (the answer's ``X-Llmcore-Dropped-Tools`` header); the model simply cannot
    call them, so nothing it says is lost."""
    if not raw:
        return None
    expect(isinstance(raw, list), "tools must be a list", "tools")
    out = []
    for i, t in enumerate(raw):
        kind = t.get("type") if isinstance(t, dict) else None
        expect(isinstance(kind, str), f"tools[{i}] needs a type", "tools")
        if kind != "function":
            dropped.append(str(t.get("name") or kind))
            continue
        fn: dict[str, Any] = {
            "name": t.get("name"),
            "parameters": t.get("parameters") or {"type": "object", "properties": {}},
        }
        if t.get("description"):
            fn["description"] = t["description"]
        if t.get("strict") is not None:
            fn["strict"] = t["strict"]
        out.append({"type": "function", "function": fn})
    return out or None


def _tool_choice(raw: Any) -> Any:
    if raw is None or isinstance(raw, str):
        return raw
    if isinstance(raw, dict) and raw.get("type") == "function":
        return {"type": "function", "function": {"name": raw.get("name")}}
    raise bad_request(f"tool_choice {raw!r} cannot be carried by this gateway", "tool_choice")


def _format(text: Any) -> dict[str, Any] | None:
    fmt = (text or {}).get("format") if isinstance(text, dict) else None
    if not fmt or fmt.get("type") == "text":
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    raise bad_request(f"text.format.type {fmt.get('type')!r} is unknown", "text.format")


def parse_responses_request(body: Any) -> tuple[ChatRequest, bool, list[str]]:
    """→ (request, stream, names of the tools left out)."""
    expect(isinstance(body, dict), "the body must be a JSON object")
    model = body.get("model")
    expect(isinstance(model, str) and bool(model), "model is required", "model")
    expect(
        not body.get("previous_response_id"),
        "previous_response_id is not supported: this gateway stores no responses; "
        "send the whole conversation as input (store: false)",
        "previous_response_id",
    )
    msgs: list[Message] = []
    if body.get("instructions"):
        msgs.append(Message("system", str(body["instructions"])))
    msgs.extend(_input(body.get("input")))
    extra = {k: v for k, v in body.items() if k not in _HANDLED}
    dropped: list[str] = []
    if body.get("parallel_tool_calls") is not None and body.get("tools"):
        extra["parallel_tool_calls"] = bool(body["parallel_tool_calls"])
    request = ChatRequest(
        messages=msgs,
        model=model,
        max_tokens=as_int(body.get("max_output_tokens"), "max_output_tokens", 1),
        temperature=as_float(body.get("temperature"), "temperature"),
        top_p=as_float(body.get("top_p"), "top_p"),
        tools=_tools(body.get("tools"), dropped),
        tool_choice=_tool_choice(body.get("tool_choice")),
        response_format=_format(body.get("text")),
        extra=extra,
    )
    if request.tools is None:
        request.tool_choice = None
    stream = bool(body.get("stream"))
    request.stream = stream
    return request, stream, dropped


def usage_dict(u: Usage | None) -> dict[str, Any]:
    u = u or Usage()
    return {
        "input_tokens": u.input_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_tokens or 0},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens or 0},
        "total_tokens": u.input_tokens + u.output_tokens,
    }


def _message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}]
        if status == "completed"
        else [],
    }


def _call_item(
    call: dict[str, Any], arguments: str | None = None, status: str = "completed"
) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": "fc_" + call["id"],
        "call_id": call["id"],
        "name": call["function"]["name"],
        "arguments": call["function"]["arguments"] if arguments is None else arguments,
        "status": status,
    }


def _reasoning_item(text: str) -> dict[str, Any]:
    return {
        "type": "reasoning",
        "id": new_id("rs_"),
        "summary": [{"type": "summary_text", "text": text}],
    }


def response_object(
    rid: str,
    model: str,
    body: dict[str, Any],
    status: str,
    output: list[dict[str, Any]],
    usage: Usage | None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "response",
        "created_at": now(),
        "status": status,
        "error": error,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": bool(body.get("parallel_tool_calls", True)),
        "previous_response_id": None,
        "reasoning": body.get("reasoning"),
        "store": False,
        "temperature": body.get("temperature"),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p"),
        "truncation": "disabled",
        "usage": usage_dict(usage) if usage is not None else None,
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def render_response(resp: ChatResponse, model: str, body: dict[str, Any]) -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    if resp.thinking:
        output.append(_reasoning_item(resp.thinking))
    calls = tool_calls_out(resp.tool_calls) or []
    if resp.content or not calls:
        output.append(_message_item(new_id("msg_"), resp.content))
    output.extend(_call_item(c) for c in calls)
    status = "incomplete" if resp.finish_reason == "length" else "completed"
    out = response_object(new_id("resp_"), model, body, status, output, resp.usage)
    if status == "incomplete":
        out["incomplete_details"] = {"reason": "max_output_tokens"}
    return out


class ResponseStream:
    """Routed chunks → Responses events, each with its ``sequence_number``."""

    def __init__(self, model: str, body: dict[str, Any]) -> None:
        self.model = model
        self.body = body
        self.id = new_id("resp_")
        self.seq = 0
        self.output: list[dict[str, Any]] = []
        self.msg_id: str | None = None
        self.text: list[str] = []
        self.usage: Usage | None = None
        self.reason: str | None = None

    def _sse(self, kind: str, data: dict[str, Any]) -> bytes:
        payload = {"type": kind, "sequence_number": self.seq, **data}
        self.seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + dumps(payload).encode() + b"\n\n"

    def _resp(
        self, status: str, usage: Usage | None = None, error: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return response_object(
            self.id, self.model, self.body, status, list(self.output), usage, error
        )

    def start(self) -> bytes:
        r = self._resp("in_progress")
        return self._sse("response.created", {"response": r}) + self._sse(
            "response.in_progress", {"response": r}
        )

    def _close_message(self) -> bytes:
        if self.msg_id is None:
            return b""
        idx = len(self.output)
        text = "".join(self.text)
        item = _message_item(self.msg_id, text)
        part = item["content"][0]
        out = self._sse(
            "response.output_text.done",
            {"item_id": self.msg_id, "output_index": idx, "content_index": 0, "text": text},
        )
        out += self._sse(
            "response.content_part.done",
            {"item_id": self.msg_id, "output_index": idx, "content_index": 0, "part": part},
        )
        out += self._sse("response.output_item.done", {"output_index": idx, "item": item})
        self.output.append(item)
        self.msg_id = None
        self.text = []
        return out

    def chunk(self, c: StreamChunk) -> bytes:
        out = b""
        if c.thinking:
            item = _reasoning_item(c.thinking)
            out += self._close_message()
            idx = len(self.output)
            out += self._sse("response.output_item.added", {"output_index": idx, "item": item})
            out += self._sse("response.output_item.done", {"output_index": idx, "item": item})
            self.output.append(item)
        if c.content:
            idx = len(self.output)
            if self.msg_id is None:
                self.msg_id = new_id("msg_")
                out += self._sse(
                    "response.output_item.added",
                    {"output_index": idx, "item": _message_item(self.msg_id, "", "in_progress")},
                )
                out += self._sse(
                    "response.content_part.added",
                    {
                        "item_id": self.msg_id,
                        "output_index": idx,
                        "content_index": 0,
                        "part": {"type": "output_text", "text": "", "annotations": []},
                    },
                )
            self.text.append(c.content)
            out += self._sse(
                "response.output_text.delta",
                {
                    "item_id": self.msg_id,
                    "output_index": idx,
                    "content_index": 0,
                    "delta": c.content,
                },
            )
        for call in tool_calls_out(c.tool_calls) or ():
            out += self._close_message()
            idx = len(self.output)
            item = _call_item(call)
            out += self._sse(
                "response.output_item.added",
                {"output_index": idx, "item": _call_item(call, "", "in_progress")},
            )
            out += self._sse(
                "response.function_call_arguments.delta",
                {"item_id": item["id"], "output_index": idx, "delta": item["arguments"]},
            )
            out += self._sse(
                "response.function_call_arguments.done",
                {
                    "item_id": item["id"],
                    "output_index": idx,
                    "name": item["name"],
                    "arguments": item["arguments"],
                },
            )
            out += self._sse("response.output_item.done", {"output_index": idx, "item": item})
            self.output.append(item)
        if c.usage is not None:
            self.usage = c.usage
        if c.finish_reason:
            self.reason = c.finish_reason
        return out

    def end(self) -> bytes:
        if not self.output and self.msg_id is None:  # an empty answer: one empty message
            self.msg_id = new_id("msg_")
            idx = 0
            out = self._sse(
                "response.output_item.added",
                {"output_index": idx, "item": _message_item(self.msg_id, "", "in_progress")},
            )
            out += self._sse(
                "response.content_part.added",
                {
                    "item_id": self.msg_id,
                    "output_index": idx,
                    "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": []},
                },
            )
        else:
            out = b""
        out += self._close_message()
        if self.reason == "length":
            r = self._resp("incomplete", self.usage or Usage())
            r["incomplete_details"] = {"reason": "max_output_tokens"}
            return out + self._sse("response.incomplete", {"response": r})
        return out + self._sse(
            "response.completed", {"response": self._resp("completed", self.usage or Usage())}
        )

    def error(self, err: WireError) -> bytes:
        """A failure after the first byte: ``response.failed`` (Codex and the SDK read it);
        no ``response.completed`` follows."""
        e = {"code": "server_error", "message": err.message}
        return self._close_message() + self._sse(
            "response.failed", {"response": self._resp("failed", self.usage, e)}
        )
