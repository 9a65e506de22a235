"""Google Gemini API (``v1beta``), as Gemini CLI and ``google-genai`` call it.

Serves ``POST /v1beta/models/{model}:generateContent``, ``:streamGenerateContent`` (SSE with
``?alt=sse``; a JSON array without it, as Google does), ``:countTokens``, and
``GET /v1beta/models``. Only the two generate routes consume scripted replies. Errors use
Google's shape: ``{"error": {"code", "message", "status"}}``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

from .base import FakeServer, Handler, RecordedRequest, Reply

#: HTTP status -> Google's canonical status name.
ERROR_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_MODEL = r"/v1beta/models/(?P<model>[^/:]+)"


def _contents_text(body: dict[str, Any]) -> str:
    out: list[str] = []
    system = body.get("systemInstruction") or body.get("system_instruction") or {}
    for content in [system, *(body.get("contents") or [])]:
        if isinstance(content, dict):
            for part in content.get("parts") or []:
                if isinstance(part, dict) and part.get("text"):
                    out.append(str(part["text"]))
    return " ".join(out)


class GeminiFake(FakeServer):
    """A scripted Gemini server: text, thought and ``functionCall`` parts."""

    models = ["gemini-fake-1"]

    def setup_routes(self) -> None:
        self.route("POST", _MODEL + ":generateContent", self.generate)
        self.route("POST", _MODEL + ":streamGenerateContent", self.stream)
        self.route("POST", _MODEL + ":countTokens", self.count_tokens)
        self.route("GET", "/v1beta/models", self.list_models)

    @property
    def base_url(self) -> str:
        """What ``GOOGLE_GEMINI_BASE_URL`` expects (no version path)."""
        return self.url

    def next_reply(self, req: RecordedRequest) -> Reply:
        if req.path.endswith(("GenerateContent", ":generateContent")):
            return super().next_reply(req)
        self.record(req)
        return Reply()

    def generate_requests(self) -> list[RecordedRequest]:
        """The recorded model turns (both generate routes), in order."""
        return [r for r in self.requests if "enerateContent" in r.path]

    def render_error(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        h.send_json(
            reply.status,
            {
                "error": {
                    "code": reply.status,
                    "message": reply.error or f"error {reply.status}",
                    "status": ERROR_STATUS.get(reply.status, "UNKNOWN"),
                }
            },
            reply.headers,
        )

    def list_models(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        h.send_json(
            200,
            {
                "models": [
                    {
                        "name": f"models/{m}",
                        "displayName": m,
                        "inputTokenLimit": 1048576,
                        "outputTokenLimit": 65536,
                        "supportedGenerationMethods": ["generateContent", "countTokens"],
                    }
                    for m in self.models
                ]
            },
        )

    def count_tokens(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        h.send_json(200, {"totalTokens": max(1, len(_contents_text(req.json or {}).split()))})

    # -- generation --------------------------------------------------------------------
    @staticmethod
    def _model(req: RecordedRequest) -> str:
        return req.path.split("/models/", 1)[1].split(":", 1)[0]

    def _chunk(
        self,
        parts: list[dict[str, Any]],
        model: str,
        response_id: str,
        finish: str | None,
        usage: dict[str, int],
    ) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": model,
            "responseId": response_id,
        }

    def _parts(self, reply: Reply) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        if reply.thinking:
            parts.append({"text": reply.thinking, "thought": True})
        if reply.text:
            parts.append({"text": reply.text})
        for call in reply.tool_calls or []:
            fc: dict[str, Any] = {"name": call["name"], "args": call.get("arguments", {})}
            if call.get("id"):
                fc["id"] = call["id"]
            parts.append({"functionCall": fc})
        return parts

    def _usage(self, req: RecordedRequest, reply: Reply) -> dict[str, int]:
        pin, pout = reply.token_usage(_contents_text(req.json or {}))
        return {
            "promptTokenCount": pin,
            "candidatesTokenCount": pout,
            "totalTokenCount": pin + pout,
        }

    def generate(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        finish = reply.finish_reason or "STOP"
        h.send_json(
            200,
            self._chunk(
                self._parts(reply),
                reply.model or self._model(req),
                uuid.uuid4().hex[:20],
                finish,
                self._usage(req, reply),
            ),
        )

    def stream(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        model = reply.model or self._model(req)
        rid = uuid.uuid4().hex[:20]
        usage = self._usage(req, reply)
        finish = reply.finish_reason or "STOP"
        calls = [p for p in self._parts(reply) if "functionCall" in p]
        chunks: list[dict[str, Any]] = []
        if reply.thinking:
            chunks.append(
                self._chunk(
                    [{"text": reply.thinking, "thought": True}],
                    model,
                    rid,
                    None,
                    {"promptTokenCount": usage["promptTokenCount"]},
                )
            )
        pieces = reply.pieces() if reply.text else []
        for piece in pieces[:-1]:
            chunks.append(
                self._chunk(
                    [{"text": piece}],
                    model,
                    rid,
                    None,
                    {"promptTokenCount": usage["promptTokenCount"]},
                )
            )
        # The last chunk carries the last text, the function calls, the finish reason and
        # the full usage, as Google's stream does.
        last = [{"text": pieces[-1]}] if pieces else []
        chunks.append(self._chunk(last + calls or [{"text": ""}], model, rid, finish, usage))
        if req.query and "alt=sse" in req.query:
            h.send_stream((f"data: {json.dumps(c)}\r\n\r\n".encode() for c in chunks), reply)
            return

        def array() -> Iterator[bytes]:
            for i, c in enumerate(chunks):
                yield ("[" if i == 0 else ",\r\n").encode() + json.dumps(c).encode()
            yield b"]"

        h.send_stream(array(), reply, content_type="application/json")
