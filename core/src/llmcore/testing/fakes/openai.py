"""OpenAI Chat Completions and model list, as OpenAI-compatible servers speak them.

(The provider issue extends this with completions, embeddings, vLLM and LM Studio extras.)
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from .base import FakeServer, Handler, RecordedRequest, Reply


class OpenAIFake(FakeServer):
    """Serves ``/v1/chat/completions`` (plain and SSE) and ``/v1/models``."""

    models = ["fake-model"]

    def setup_routes(self) -> None:
        self.route("POST", "/v1/chat/completions", self.chat)
        self.route("GET", "/v1/models", self.list_models)

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def render_error(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        kind = {401: "authentication_error", 404: "not_found_error",
                429: "rate_limit_exceeded"}.get(reply.status, "server_error")
        h.send_json(reply.status, {"error": {"message": reply.error or f"error {reply.status}",
                                             "type": kind, "param": None, "code": None}},
                    reply.headers)

    def list_models(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        h.send_json(200, {"object": "list", "data": [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"}
            for m in self.models]})

    def chat(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        body = req.json or {}
        model = reply.model or body.get("model") or self.models[0]
        prompt = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
        pin, pout = reply.token_usage(prompt)
        cid = "chatcmpl-" + uuid.uuid4().hex[:12]
        created = int(time.time())
        tool_calls = [
            {"id": t.get("id", f"call_{i}"), "type": "function",
             "function": {"name": t["name"], "arguments": json.dumps(t.get("arguments", {}))}}
            for i, t in enumerate(reply.tool_calls or [])
        ]
        finish = reply.finish_reason or ("tool_calls" if tool_calls else "stop")
        usage = {"prompt_tokens": pin, "completion_tokens": pout, "total_tokens": pin + pout}
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant",
                                       "content": None if tool_calls and not reply.text
                                       else reply.text}
            if tool_calls:
                message["tool_calls"] = tool_calls
            h.send_json(200, {
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish,
                             "logprobs": None}],
                "usage": usage,
            })
            return
        include_usage = (body.get("stream_options") or {}).get("include_usage", False)

        def event(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            data = {"id": cid, "object": "chat.completion.chunk", "created": created,
                    "model": model, "choices": [{"index": 0, "delta": delta,
                                                 "finish_reason": finish_reason,
                                                 "logprobs": None}]}
            return f"data: {json.dumps(data)}\n\n".encode()

        def pieces() -> Any:
            yield event({"role": "assistant", "content": ""})
            for piece in reply.pieces() if reply.text else []:
                yield event({"content": piece})
            for i, t in enumerate(tool_calls):
                yield event({"tool_calls": [{"index": i, **t}]})
            yield event({}, finish)
            if include_usage or reply.extra.get("usage_in_stream"):
                data = {"id": cid, "object": "chat.completion.chunk", "created": created,
                        "model": model, "choices": [], "usage": usage}
                yield f"data: {json.dumps(data)}\n\n".encode()
            yield b"data: [DONE]\n\n"

        h.send_stream(pieces(), reply)
