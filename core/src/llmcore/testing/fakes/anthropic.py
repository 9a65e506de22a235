"""Anthropic Messages API, as Claude Code and the ``anthropic`` SDK call it.

Serves ``POST /v1/messages`` (plain JSON and SSE; the ``?beta=true`` query Claude Code adds is
accepted), ``POST /v1/messages/count_tokens`` and ``GET /v1/models``. Only ``/v1/messages``
takes a reply from the script: the side routes never consume one, so a script of N replies
drives exactly N model turns whatever else the client asks first.

It refuses what the real API refuses, before taking a reply from the script: a request
without ``x-api-key`` (or ``Authorization: Bearer``, which OAuth clients send) gets 401
``authentication_error``; without ``anthropic-version`` or ``max_tokens``, 400
``invalid_request_error`` with the API's wording. Replies use Anthropic's stop reasons
(``end_turn``, ``max_tokens``, ``tool_use``, ``stop_sequence``): a :class:`Reply` may give
llmcore's names (``stop``, ``length``, ``tool_calls``) and they are translated.
``Reply.extra`` may hold ``cache_read``/``cache_creation`` (prompt-caching token counts) and
``stream_error`` (an error ``type`` sent as an ``error`` event after the first text piece).

Base URL convention: :attr:`AnthropicFake.base_url` is the server root, without ``/v1``,
as ``anthropic.Anthropic(base_url=...)`` and ``ANTHROPIC_BASE_URL`` expect.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import attrs

from .base import FakeServer, Handler, RecordedRequest, Reply

#: HTTP status -> Anthropic's error ``type``.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}

#: llmcore's finish reasons -> Anthropic's stop reasons (Anthropic's own pass through).
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def _text_of(content: Any) -> str:
    """Plain text of a message's ``content`` (a string or a list of blocks)."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content or []:
        if isinstance(block, dict):
            parts.append(str(block.get("text") or block.get("content") or ""))
    return " ".join(parts)


class AnthropicFake(FakeServer):
    """A scripted Anthropic Messages server (text, thinking and ``tool_use`` blocks)."""

    models = ["claude-fake-1"]
    scripted_paths = ("/v1/messages",)

    def __init__(
        self, default: Reply | None = None, *, models: list[str] | None = None, **kw: Any
    ) -> None:
        super().__init__(default, **kw)
        self.models = list(models if models is not None else type(self).models)

    def setup_routes(self) -> None:
        self.route("POST", "/v1/messages", self.messages)
        self.route("POST", "/v1/messages/count_tokens", self.count_tokens)
        self.route("GET", "/v1/models", self.list_models)

    @property
    def base_url(self) -> str:
        """What ``ANTHROPIC_BASE_URL`` / ``anthropic.Anthropic(base_url=…)`` expect (no /v1)."""
        return self.url

    def next_reply(self, req: RecordedRequest) -> Reply:
        refusal = self.refusal(req)
        if refusal is not None:  # refused before the model runs: the script is untouched
            self.record(req)
            return refusal
        if req.path in self.scripted_paths:
            return super().next_reply(req)
        self.record(req)
        return Reply()

    @staticmethod
    def refusal(req: RecordedRequest) -> Reply | None:
        """The error the real API gives a request missing what it requires, or ``None``."""
        headers = {k.lower(): v for k, v in req.headers.items()}
        if not headers.get("x-api-key") and not headers.get("authorization"):
            return Reply(status=401, error="x-api-key header is required")
        if not headers.get("anthropic-version"):
            return Reply(status=400, error="anthropic-version: header is required")
        if req.method == "POST" and req.path == "/v1/messages":
            try:
                body = req.json
            except ValueError:
                return Reply(
                    status=400,
                    error="There was an issue with your request body: it is not valid JSON",
                )
            if not isinstance(body, dict) or "max_tokens" not in body:
                return Reply(status=400, error="max_tokens: Field required")
            if isinstance(body["max_tokens"], bool) or not isinstance(body["max_tokens"], int):
                return Reply(status=400, error="max_tokens: Input should be a valid integer")
        return None

    def message_requests(self) -> list[RecordedRequest]:
        """The recorded model turns (``POST /v1/messages``), in order."""
        return [r for r in self.requests if r.path == "/v1/messages"]

    def render_error(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        kind = ERROR_TYPES.get(reply.status, "api_error")
        headers = {"request-id": "req_" + uuid.uuid4().hex[:20], **reply.headers}
        h.send_json(
            reply.status,
            {
                "type": "error",
                "error": {"type": kind, "message": reply.error or f"error {reply.status}"},
            },
            headers,
        )

    # -- side routes -------------------------------------------------------------------
    def list_models(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
            for m in self.models
        ]
        h.send_json(
            200,
            {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            },
        )

    def count_tokens(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        body = req.json or {}
        text = (
            _text_of(body.get("system"))
            + " "
            + " ".join(_text_of(m.get("content")) for m in body.get("messages", []))
        )
        h.send_json(200, {"input_tokens": max(1, len(text.split()))})

    # -- messages ----------------------------------------------------------------------
    def _blocks(self, reply: Reply) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if reply.thinking:
            blocks.append(
                {
                    "type": "thinking",
                    "thinking": reply.thinking,
                    "signature": "sig_" + uuid.uuid4().hex[:16],
                }
            )
        if reply.text:
            blocks.append({"type": "text", "text": reply.text})
        for i, call in enumerate(reply.tool_calls or []):
            blocks.append(
                {
                    "type": "tool_use",
                    "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:20]}{i}",
                    "name": call["name"],
                    "input": call.get("arguments", {}),
                }
            )
        return blocks

    def messages(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        body = req.json or {}
        model = reply.model or body.get("model") or self.models[0]
        if model not in self.models:
            self.models.append(model)  # what it has answered for, it lists
        prompt = (
            _text_of(body.get("system"))
            + " "
            + " ".join(_text_of(m.get("content")) for m in body.get("messages", []))
        )
        pin, pout = reply.token_usage(prompt)
        blocks = self._blocks(reply)
        stop = reply.finish_reason or ("tool_use" if reply.tool_calls else "end_turn")
        stop = STOP_REASONS.get(stop, stop)
        msg_id = "msg_" + uuid.uuid4().hex[:24]
        usage = {
            "input_tokens": pin,
            "output_tokens": pout,
            "cache_creation_input_tokens": int(reply.extra.get("cache_creation", 0)),
            "cache_read_input_tokens": int(reply.extra.get("cache_read", 0)),
            "server_tool_use": None,
            "service_tier": "standard",
        }
        headers = {"request-id": "req_" + uuid.uuid4().hex[:20]}
        if not body.get("stream"):
            h.send_json(
                200,
                {
                    "id": msg_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": blocks,
                    "stop_reason": stop,
                    "stop_sequence": None,
                    "usage": usage,
                },
                headers,
            )
            return

        def sse(kind: str, data: dict[str, Any]) -> bytes:
            return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()

        def events() -> Iterator[bytes]:
            yield sse(
                "message_start",
                {
                    "message": {
                        "id": msg_id,
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {**usage, "output_tokens": 1},
                    }
                },
            )
            yield sse("ping", {})
            for index, block in enumerate(blocks):
                kind = block["type"]
                if kind == "text":
                    yield sse(
                        "content_block_start",
                        {"index": index, "content_block": {"type": "text", "text": ""}},
                    )
                    for n, piece in enumerate(reply.pieces()):
                        yield sse(
                            "content_block_delta",
                            {"index": index, "delta": {"type": "text_delta", "text": piece}},
                        )
                        if n == 0 and reply.extra.get("stream_error"):
                            kind = str(reply.extra["stream_error"])
                            yield sse(
                                "error",
                                {
                                    "error": {
                                        "type": kind,
                                        "message": kind.replace("_error", "").title(),
                                    }
                                },
                            )
                            return
                elif kind == "thinking":
                    yield sse(
                        "content_block_start",
                        {
                            "index": index,
                            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
                        },
                    )
                    yield sse(
                        "content_block_delta",
                        {
                            "index": index,
                            "delta": {"type": "thinking_delta", "thinking": block["thinking"]},
                        },
                    )
                    yield sse(
                        "content_block_delta",
                        {
                            "index": index,
                            "delta": {"type": "signature_delta", "signature": block["signature"]},
                        },
                    )
                else:
                    yield sse(
                        "content_block_start",
                        {
                            "index": index,
                            "content_block": {
                                "type": "tool_use",
                                "id": block["id"],
                                "name": block["name"],
                                "input": {},
                            },
                        },
                    )
                    raw = json.dumps(block["input"])
                    # Two pieces, so a client must join partial JSON as the real API needs.
                    cut = len(raw) // 2
                    for part in (raw[:cut], raw[cut:]):
                        yield sse(
                            "content_block_delta",
                            {
                                "index": index,
                                "delta": {"type": "input_json_delta", "partial_json": part},
                            },
                        )
                yield sse("content_block_stop", {"index": index})
            yield sse(
                "message_delta",
                {
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": pout},
                },
            )
            yield sse("message_stop", {})

        h.send_stream(events(), attrs.evolve(reply, headers={**headers, **reply.headers}))
