"""OpenAI-compatible fake servers: the plain OpenAI API, vLLM's extras and LM Studio's.

* :class:`OpenAIFake`: ``/v1/chat/completions`` (plain and SSE), ``/v1/completions``
  (a prompt or a list of prompts, plain and SSE), ``/v1/embeddings`` (float or base64),
  ``/v1/models``, and errors in OpenAI's ``{"error": {...}}`` shape.
* :class:`VLLMFake`: adds ``/health``, ``/version``, ``/metrics`` (Prometheus text),
  ``/tokenize``, ``/detokenize`` and ``max_model_len`` in the model list.
* :class:`LMStudioFake`: adds ``/api/v0/models`` (LM Studio's native model list).

The shapes follow the servers' documented answers and are checked against the official
``openai`` client's types in the tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
import uuid
from typing import Any

from .base import FakeServer, Handler, RecordedRequest, Reply


def _sse(data: Any) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


def fake_vector(text: str, dim: int) -> list[float]:
    """A deterministic unit-ish vector for ``text`` (same text, same vector)."""
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % len(digest)] - 127.5) / 127.5, 6) for i in range(dim)]


class OpenAIFake(FakeServer):
    """Serves the OpenAI API under ``/v1``; :attr:`base_url` is what clients point at.

    Besides the common :class:`Reply` fields, these ``Reply.extra`` keys shape streams:
    ``usage_in_stream`` (send the usage chunk even when not asked), ``no_finish`` (no
    chunk with a ``finish_reason``), ``no_done`` (no ``data: [DONE]``), ``junk_after``
    (after that many text pieces, an event that is not JSON); and for
    ``/v1/completions``, ``texts`` (one text per choice, for batches).
    """

    models = ["fake-model"]
    #: Length of the vectors ``/v1/embeddings`` returns.
    embedding_dim = 8
    #: Paths that never take a scripted reply (probes must not eat a test's script).
    passive_paths: frozenset[str] = frozenset()

    def setup_routes(self) -> None:
        self.route("POST", "/v1/chat/completions", self.chat)
        self.route("POST", "/v1/completions", self.completions)
        self.route("POST", "/v1/embeddings", self.embeddings)
        self.route("GET", "/v1/models", self.list_models)

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def next_reply(self, req: RecordedRequest) -> Reply:
        if req.path in self.passive_paths:
            self.record(req)
            return Reply()
        return super().next_reply(req)

    def render_error(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        kind, code = {
            400: ("invalid_request_error", None),
            401: ("invalid_request_error", "invalid_api_key"),
            403: ("permission_denied", None),
            404: ("invalid_request_error", "model_not_found"),
            422: ("invalid_request_error", None),
            429: ("requests", "rate_limit_exceeded"),
        }.get(reply.status, ("server_error", None))
        h.send_json(
            reply.status,
            {
                "error": {
                    "message": reply.error or f"error {reply.status}",
                    "type": kind,
                    "param": None,
                    "code": code,
                }
            },
            reply.headers,
        )

    # -- models ------------------------------------------------------------------------
    def model_entry(self, name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 1700000000, "owned_by": "fake"}

    def list_models(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        h.send_json(200, {"object": "list", "data": [self.model_entry(m) for m in self.models]})

    # -- chat --------------------------------------------------------------------------
    def chat(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        body = req.json or {}
        model = reply.model or body.get("model") or self.models[0]
        prompt = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
        pin, pout = reply.token_usage(prompt)
        cid = "chatcmpl-" + uuid.uuid4().hex[:12]
        created = int(time.time())
        tool_calls = [
            {
                "id": t.get("id", f"call_{i}"),
                "type": "function",
                "function": {"name": t["name"], "arguments": json.dumps(t.get("arguments", {}))},
            }
            for i, t in enumerate(reply.tool_calls or [])
        ]
        finish = reply.finish_reason or ("tool_calls" if tool_calls else "stop")
        usage = {"prompt_tokens": pin, "completion_tokens": pout, "total_tokens": pin + pout}
        if not body.get("stream"):
            message: dict[str, Any] = {
                "role": "assistant",
                "content": None if tool_calls and not reply.text else reply.text,
            }
            if reply.thinking:
                message["reasoning_content"] = reply.thinking
            if tool_calls:
                message["tool_calls"] = tool_calls
            h.send_json(
                200,
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
                    ],
                    "usage": usage,
                },
                reply.headers,
            )
            return
        include_usage = (body.get("stream_options") or {}).get("include_usage", False)

        def event(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            return _sse(
                {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "delta": delta,
                            "finish_reason": finish_reason,
                            "logprobs": None,
                        }
                    ],
                }
            )

        def pieces() -> Any:
            yield event({"role": "assistant", "content": ""})
            if reply.thinking:
                yield event({"reasoning_content": reply.thinking})
            for n, piece in enumerate(reply.pieces() if reply.text else []):
                if n == reply.extra.get("junk_after"):
                    yield b'data: {"choices": [{"index": 0, "delta": \n\n'
                yield event({"content": piece})
            for i, t in enumerate(tool_calls):
                # Like OpenAI: the first delta names the call, the next carries arguments.
                yield event(
                    {
                        "tool_calls": [
                            {
                                "index": i,
                                "id": t["id"],
                                "type": "function",
                                "function": {"name": t["function"]["name"], "arguments": ""},
                            }
                        ]
                    }
                )
                yield event(
                    {
                        "tool_calls": [
                            {"index": i, "function": {"arguments": t["function"]["arguments"]}}
                        ]
                    }
                )
            if not reply.extra.get("no_finish"):
                yield event({}, finish)
            if include_usage or reply.extra.get("usage_in_stream"):
                yield _sse(
                    {
                        "id": cid,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [],
                        "usage": usage,
                    }
                )
            if not reply.extra.get("no_done"):
                yield b"data: [DONE]\n\n"

        h.send_stream(pieces(), reply)

    # -- text completions --------------------------------------------------------------
    def completions(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        """``prompt`` may be a string or a list; each prompt gets ``n`` choices. Texts come
        from ``reply.extra['texts']`` (one per choice) or are ``reply.text``."""
        body = req.json or {}
        model = reply.model or body.get("model") or self.models[0]
        prompts = body.get("prompt", "")
        prompts = prompts if isinstance(prompts, list) else [prompts]
        n = int(body.get("n") or 1)
        texts = reply.extra.get("texts")
        count = len(prompts) * n
        outs = [texts[i] if texts else reply.text for i in range(count)]
        pin = sum(reply.token_usage(str(p))[0] for p in prompts)
        pout = sum(max(1, len(t.split())) for t in outs)
        if reply.usage is not None:
            pin, pout = reply.usage
        usage = {"prompt_tokens": pin, "completion_tokens": pout, "total_tokens": pin + pout}
        cid = "cmpl-" + uuid.uuid4().hex[:12]
        created = int(time.time())
        finish = reply.finish_reason or "stop"
        if not body.get("stream"):
            h.send_json(
                200,
                {
                    "id": cid,
                    "object": "text_completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {"index": i, "text": t, "finish_reason": finish, "logprobs": None}
                        for i, t in enumerate(outs)
                    ],
                    "usage": usage,
                },
                reply.headers,
            )
            return
        include_usage = (body.get("stream_options") or {}).get("include_usage", False)

        def chunk(i: int, text: str, fin: str | None) -> bytes:
            return _sse(
                {
                    "id": cid,
                    "object": "text_completion",
                    "created": created,
                    "model": model,
                    "choices": [{"index": i, "text": text, "finish_reason": fin, "logprobs": None}],
                }
            )

        def pieces() -> Any:
            for i, text in enumerate(outs):
                for word in Reply(text=text).pieces():
                    yield chunk(i, word, None)
                yield chunk(i, "", finish)
            if include_usage:
                yield _sse(
                    {
                        "id": cid,
                        "object": "text_completion",
                        "created": created,
                        "model": model,
                        "choices": [],
                        "usage": usage,
                    }
                )
            yield b"data: [DONE]\n\n"

        h.send_stream(pieces(), reply)

    # -- embeddings --------------------------------------------------------------------
    def embeddings(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        body = req.json or {}
        model = reply.model or body.get("model") or self.models[0]
        inputs = body.get("input", "")
        inputs = inputs if isinstance(inputs, list) else [inputs]
        b64 = body.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(inputs):
            vec = fake_vector(str(text), int(body.get("dimensions") or self.embedding_dim))
            emb: Any = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode() if b64 else vec
            data.append({"object": "embedding", "index": i, "embedding": emb})
        tokens = sum(max(1, len(str(t).split())) for t in inputs)
        h.send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
            reply.headers,
        )


class VLLMFake(OpenAIFake):
    """vLLM's OpenAI server: the OpenAI routes plus ``/health``, ``/version``,
    ``/metrics``, ``/tokenize`` and ``/detokenize``.

    Set :attr:`running`, :attr:`waiting` and :attr:`kv_cache_usage` to shape ``/metrics``,
    and :attr:`healthy` to make ``/health`` fail (503) the way a dead engine does.
    """

    max_model_len = 4096
    version = "0.6.3"
    passive_paths = frozenset(
        {"/health", "/version", "/metrics", "/tokenize", "/detokenize", "/v1/models"}
    )

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.running = 0
        self.waiting = 0
        self.kv_cache_usage = 0.0
        self.healthy = True

    def setup_routes(self) -> None:
        super().setup_routes()
        self.route("GET", "/health", self.health)
        self.route("GET", "/version", self.get_version)
        self.route("GET", "/metrics", self.metrics)
        self.route("POST", "/tokenize", self.tokenize)
        self.route("POST", "/detokenize", self.detokenize)

    def model_entry(self, name: str) -> dict[str, Any]:
        return {
            "id": name,
            "object": "model",
            "created": 1700000000,
            "owned_by": "vllm",
            "root": name,
            "parent": None,
            "max_model_len": self.max_model_len,
            "permission": [
                {
                    "id": "modelperm-fake",
                    "object": "model_permission",
                    "created": 1700000000,
                    "allow_create_engine": False,
                    "allow_sampling": True,
                    "allow_logprobs": True,
                    "allow_search_indices": False,
                    "allow_view": True,
                    "allow_fine_tuning": False,
                    "organization": "*",
                    "group": None,
                    "is_blocking": False,
                }
            ],
        }

    def health(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        if self.healthy:
            h.send_raw(200, b"", content_type="application/json")
        else:
            h.send_json(503, {"error": "engine is dead"})

    def get_version(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        h.send_json(200, {"version": self.version})

    def metrics(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        label = f'model_name="{self.models[0]}"'
        lines = []
        for name, kind, help_, value in (
            (
                "vllm:num_requests_running",
                "gauge",
                "Number of requests in model execution batches.",
                float(self.running),
            ),
            (
                "vllm:num_requests_waiting",
                "gauge",
                "Number of requests waiting to be processed.",
                float(self.waiting),
            ),
            (
                "vllm:kv_cache_usage_perc",
                "gauge",
                "KV-cache usage. 1 means 100 percent usage.",
                float(self.kv_cache_usage),
            ),
        ):
            lines += [
                f"# HELP {name} {help_}",
                f"# TYPE {name} {kind}",
                f"{name}{{{label}}} {value}",
            ]
        lines += [
            "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
            "# TYPE vllm:prompt_tokens_total counter",
            f"vllm:prompt_tokens_total{{{label}}} 0.0",
        ]
        h.send_raw(
            200,
            ("\n".join(lines) + "\n").encode(),
            content_type="text/plain; version=0.0.4; charset=utf-8",
        )

    def tokenize(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        body = req.json or {}
        text = body.get("prompt")
        if text is None:
            text = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
        # One token per whitespace-separated word, its id derived from the word.
        tokens = [
            int.from_bytes(hashlib.sha256(w.encode()).digest()[:2], "big")
            for w in str(text).split()
        ]
        h.send_json(
            200, {"count": len(tokens), "max_model_len": self.max_model_len, "tokens": tokens}
        )

    def detokenize(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        body = req.json or {}
        h.send_json(200, {"prompt": " ".join(f"<{t}>" for t in body.get("tokens", []))})


class LMStudioFake(OpenAIFake):
    """LM Studio's server: the OpenAI routes plus ``/api/v0/models`` and
    ``/api/v0/models/{id}``. :attr:`catalog` holds the native model entries."""

    passive_paths = frozenset({"/api/v0/models", "/v1/models"})

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.catalog: list[dict[str, Any]] = [
            {
                "id": "qwen2.5-7b-instruct",
                "object": "model",
                "type": "llm",
                "publisher": "lmstudio-community",
                "arch": "qwen2",
                "compatibility_type": "gguf",
                "quantization": "Q4_K_M",
                "state": "loaded",
                "max_context_length": 32768,
            },
            {
                "id": "qwen2-vl-7b-instruct",
                "object": "model",
                "type": "vlm",
                "publisher": "mlx-community",
                "arch": "qwen2_vl",
                "compatibility_type": "mlx",
                "quantization": "4bit",
                "state": "not-loaded",
                "max_context_length": 32768,
            },
            {
                "id": "text-embedding-nomic-embed-text-v1.5",
                "object": "model",
                "type": "embeddings",
                "publisher": "nomic-ai",
                "arch": "nomic-bert",
                "compatibility_type": "gguf",
                "quantization": "Q4_0",
                "state": "not-loaded",
                "max_context_length": 2048,
            },
        ]
        self.models = [m["id"] for m in self.catalog]

    def setup_routes(self) -> None:
        super().setup_routes()
        self.route("GET", "/api/v0/models", self.native_models)
        self.route("GET", "/api/v0/models/.+", self.native_model)

    def model_entry(self, name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "owned_by": "organization_owner"}

    def native_models(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        h.send_json(200, {"object": "list", "data": self.catalog})

    def native_model(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        wanted = req.path.removeprefix("/api/v0/models/")
        for m in self.catalog:
            if m["id"] == wanted:
                h.send_json(200, m)
                return
        h.send_json(404, {"error": f"Model {wanted!r} not found"})
