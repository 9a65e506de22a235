"""OpenAI Responses API (``POST /v1/responses``), as Codex and ``client.responses`` call it.

Streams the event sequence the real API sends (``response.created``, ``response.in_progress``,
``response.output_item.added``, ``response.content_part.added``, ``response.output_text.delta``
…, ``response.output_item.done``, ``response.completed`` with usage); ``function_call`` items
carry their arguments as ``response.function_call_arguments.delta`` pieces. Codex treats a
stream without ``response.completed`` as failed, so it is always sent last. ``GET /v1/models``
is served too and never consumes a scripted reply.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from .base import FakeServer, Handler, RecordedRequest, Reply

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    429: "rate_limit_exceeded",
}
ERROR_CODES = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}


def _input_text(value: Any) -> str:
    """All text in a Responses ``input`` (a string or a list of items) plus instructions."""
    if isinstance(value, str):
        return value
    out: list[str] = []
    for item in value or []:
        if not isinstance(item, dict):
            continue
        content = item.get("content")
        if isinstance(content, str):
            out.append(content)
        elif isinstance(content, list):
            out.extend(str(c.get("text", "")) for c in content if isinstance(c, dict))
        if item.get("output"):
            out.append(str(item["output"]))
    return " ".join(out)


class ResponsesFake(FakeServer):
    """A scripted OpenAI Responses server: text, reasoning summaries and function calls."""

    models = ["fake-model"]

    def setup_routes(self) -> None:
        self.route("POST", "/v1/responses", self.responses)
        self.route("GET", "/v1/models", self.list_models)

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def next_reply(self, req: RecordedRequest) -> Reply:
        if req.path == "/v1/responses":
            return super().next_reply(req)
        self.record(req)
        return Reply()

    def response_requests(self) -> list[RecordedRequest]:
        """The recorded model turns (``POST /v1/responses``), in order."""
        return [r for r in self.requests if r.path == "/v1/responses"]

    def render_error(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        h.send_json(
            reply.status,
            {
                "error": {
                    "message": reply.error or f"error {reply.status}",
                    "type": ERROR_TYPES.get(reply.status, "server_error"),
                    "param": None,
                    "code": ERROR_CODES.get(reply.status),
                }
            },
            reply.headers,
        )

    def list_models(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        h.send_json(
            200,
            {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"}
                    for m in self.models
                ],
            },
        )

    # -- responses ---------------------------------------------------------------------
    def _items(self, reply: Reply) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        if reply.thinking:
            items.append(
                {
                    "type": "reasoning",
                    "id": "rs_" + uuid.uuid4().hex[:24],
                    "summary": [{"type": "summary_text", "text": reply.thinking}],
                }
            )
        if reply.text:
            items.append(
                {
                    "type": "message",
                    "id": "msg_" + uuid.uuid4().hex[:24],
                    "status": "completed",
                    "role": "assistant",
                    "content": [
                        {
                            "type": "output_text",
                            "text": reply.text,
                            "annotations": [],
                            "logprobs": [],
                        }
                    ],
                }
            )
        for i, call in enumerate(reply.tool_calls or []):
            args = call.get("arguments", {})
            items.append(
                {
                    "type": call.get("type", "function_call"),
                    "id": "fc_" + uuid.uuid4().hex[:24],
                    "status": "completed",
                    "call_id": call.get("id") or f"call_{uuid.uuid4().hex[:12]}{i}",
                    "name": call["name"],
                    "arguments": args if isinstance(args, str) else json.dumps(args),
                }
            )
        return items

    def responses(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        body = req.json or {}
        model = reply.model or body.get("model") or self.models[0]
        prompt = str(body.get("instructions") or "") + " " + _input_text(body.get("input"))
        pin, pout = reply.token_usage(prompt)
        items = self._items(reply)
        usage = {
            "input_tokens": pin,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": pout,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": pin + pout,
        }
        resp_id = "resp_" + uuid.uuid4().hex[:24]

        def response(status: str, output: list[dict[str, Any]], with_usage: bool) -> dict[str, Any]:
            return {
                "id": resp_id,
                "object": "response",
                "created_at": int(time.time()),
                "status": status,
                "error": None,
                "incomplete_details": None,
                "instructions": body.get("instructions"),
                "max_output_tokens": None,
                "model": model,
                "output": output,
                "parallel_tool_calls": bool(body.get("parallel_tool_calls", True)),
                "previous_response_id": body.get("previous_response_id"),
                "reasoning": body.get("reasoning"),
                "store": bool(body.get("store", False)),
                "temperature": 1.0,
                "text": {"format": {"type": "text"}},
                "tool_choice": body.get("tool_choice", "auto"),
                "tools": body.get("tools", []),
                "top_p": 1.0,
                "truncation": "disabled",
                "usage": usage if with_usage else None,
                "user": None,
                "metadata": {},
            }

        if not body.get("stream"):
            h.send_json(200, response("completed", items, True))
            return

        seq = iter(range(1_000_000))

        def sse(kind: str, data: dict[str, Any]) -> bytes:
            payload = {"type": kind, "sequence_number": next(seq), **data}
            return f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode()

        def events() -> Iterator[bytes]:
            yield sse("response.created", {"response": response("in_progress", [], False)})
            yield sse("response.in_progress", {"response": response("in_progress", [], False)})
            for idx, item in enumerate(items):
                kind = item["type"]
                if kind == "message":
                    yield sse(
                        "response.output_item.added",
                        {
                            "output_index": idx,
                            "item": {**item, "status": "in_progress", "content": []},
                        },
                    )
                    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                    yield sse(
                        "response.content_part.added",
                        {
                            "item_id": item["id"],
                            "output_index": idx,
                            "content_index": 0,
                            "part": part,
                        },
                    )
                    for piece in reply.pieces():
                        yield sse(
                            "response.output_text.delta",
                            {
                                "item_id": item["id"],
                                "output_index": idx,
                                "content_index": 0,
                                "delta": piece,
                                "logprobs": [],
                            },
                        )
                    yield sse(
                        "response.output_text.done",
                        {
                            "item_id": item["id"],
                            "output_index": idx,
                            "content_index": 0,
                            "text": reply.text,
                            "logprobs": [],
                        },
                    )
                    yield sse(
                        "response.content_part.done",
                        {
                            "item_id": item["id"],
                            "output_index": idx,
                            "content_index": 0,
                            "part": item["content"][0],
                        },
                    )
                elif kind == "function_call":
                    yield sse(
                        "response.output_item.added",
                        {
                            "output_index": idx,
                            "item": {**item, "status": "in_progress", "arguments": ""},
                        },
                    )
                    raw = item["arguments"]
                    cut = len(raw) // 2
                    for part_text in (raw[:cut], raw[cut:]):
                        yield sse(
                            "response.function_call_arguments.delta",
                            {"item_id": item["id"], "output_index": idx, "delta": part_text},
                        )
                    yield sse(
                        "response.function_call_arguments.done",
                        {
                            "item_id": item["id"],
                            "output_index": idx,
                            "name": item["name"],
                            "arguments": raw,
                        },
                    )
                else:
                    yield sse("response.output_item.added", {"output_index": idx, "item": item})
                yield sse("response.output_item.done", {"output_index": idx, "item": item})
            yield sse("response.completed", {"response": response("completed", items, True)})

        h.send_stream(events(), reply)
