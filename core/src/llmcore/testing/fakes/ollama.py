"""Ollama's native API, as ``ollama serve`` speaks it.

Routes: ``/api/chat``, ``/api/generate``, ``/api/embed``, ``/api/tags``, ``/api/show``,
``/api/ps``, ``/api/pull`` and ``/api/version``. Streams are NDJSON (one JSON object a line,
``Content-Type: application/x-ndjson``); like the real server, a request without
``"stream": false`` is streamed. The last object has ``done: true``, ``done_reason`` and the
timing and token counters (nanoseconds; ``prompt_eval_count``/``eval_count``).

The fake keeps a model catalogue (:attr:`OllamaFake.catalog`): a chat, generate, embed or
show for a model that is not in it answers 404 ``{"error": "model 'x' not found"}`` (the
wording of current Ollama releases), and ``/api/pull`` of a model in
:attr:`OllamaFake.registry` streams progress and then adds it to the catalogue. Set
:attr:`OllamaFake.require_key` to act like ollama.com: every ``/api`` call then needs
``Authorization: Bearer <key>`` and answers 401 ``{"error": "unauthorized"}`` otherwise.

As with every fake, each request takes the next scripted reply, including one answered
404 because its model is missing and a pull.

Reply fields used beyond the base ones: ``thinking`` (sent as ``message.thinking`` or
``thinking``, before the answer), ``tool_calls`` (Ollama's shape: arguments as an object),
and ``extra``:

* ``stream_error``: a message sent as ``{"error": ...}`` inside a 200 stream, after
  ``stream_error_after`` pieces (default 1), which then ends the stream;
* ``dimensions``: the length of the vectors ``/api/embed`` returns (default 8).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterator
from typing import Any

from .base import FakeServer, Handler, RecordedRequest, Reply

NDJSON = "application/x-ndjson"
FAKE_VERSION = "0.12.6"


def _model_entry(
    family: str,
    parameter_size: str,
    quantization: str,
    context_length: int,
    capabilities: list[str],
    size: int,
) -> dict[str, Any]:
    return {
        "family": family,
        "parameter_size": parameter_size,
        "quantization": quantization,
        "context_length": context_length,
        "capabilities": capabilities,
        "size": size,
    }


def default_catalog() -> dict[str, dict[str, Any]]:
    """The models the fake has "pulled" when it starts."""
    return {
        "llama3.2:latest": _model_entry(
            "llama", "3.2B", "Q4_K_M", 131072, ["completion", "tools"], 2019393189
        ),
        "qwen3:0.6b": _model_entry(
            "qwen3", "751.63M", "Q4_K_M", 40960, ["completion", "tools", "thinking"], 522653767
        ),
        "llava:latest": _model_entry(
            "llama", "7B", "Q4_0", 32768, ["completion", "vision"], 4733363377
        ),
        "nomic-embed-text:latest": _model_entry(
            "nomic-bert", "137M", "F16", 2048, ["embedding"], 274302450
        ),
    }


def default_registry() -> dict[str, dict[str, Any]]:
    """Models ``/api/pull`` can fetch (as if from registry.ollama.ai)."""
    return {
        "gemma3:270m": _model_entry("gemma3", "268.10M", "Q8_0", 32768, ["completion"], 291554930),
    }


def canonical(name: str) -> str:
    """Ollama's name rule: a name without a tag means ``:latest``."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


class OllamaFake(FakeServer):
    """A scripted Ollama server. ``catalog``/``registry`` map model names to their facts."""

    def __init__(
        self,
        default: Reply | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        require_key: str | None = None,
    ) -> None:
        self.catalog: dict[str, dict[str, Any]] = default_catalog()
        self.registry: dict[str, dict[str, Any]] = default_registry()
        #: ``{name: expires_at}`` of models "loaded in memory" (what ``/api/ps`` shows).
        self.loaded: dict[str, str] = {}
        self.require_key = require_key
        self.version = FAKE_VERSION
        super().__init__(default, host, port)

    def setup_routes(self) -> None:
        self.route("POST", "/api/chat", self._guard(self.chat))
        self.route("POST", "/api/generate", self._guard(self.generate))
        self.route("POST", "/api/embed", self._guard(self.embed))
        self.route("GET", "/api/tags", self._guard(self.tags))
        self.route("POST", "/api/show", self._guard(self.show))
        self.route("GET", "/api/ps", self._guard(self.ps))
        self.route("POST", "/api/pull", self._guard(self.pull))
        self.route("GET", "/api/version", self._guard(self.version_route))
        self.route("GET", "/", self.root)

    # -- shared behaviour ----------------------------------------------------------------
    def render_error(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        h.send_json(
            reply.status, {"error": reply.error or _status_text(reply.status)}, reply.headers
        )

    def _guard(self, route: Any) -> Any:
        """Wrap a route with the cloud key check (only when ``require_key`` is set)."""

        def guarded(h: Handler, req: RecordedRequest, reply: Reply) -> None:
            if self.require_key is not None:
                auth = {k.lower(): v for k, v in req.headers.items()}.get("authorization", "")
                if auth != f"Bearer {self.require_key}":
                    h.send_json(401, {"error": "unauthorized"})
                    return
            route(h, req, reply)

        return guarded

    def _known(self, h: Handler, name: str | None, load: bool = True) -> str | None:
        """The catalogue name of ``name``, or None after answering 404 like Ollama.

        ``load``: the call puts the model in memory (chat, generate, embed do; show not).
        """
        if not name:
            h.send_json(400, {"error": "model is required"})
            return None
        key = canonical(name)
        if key not in self.catalog:
            h.send_json(404, {"error": f"model '{name}' not found"})
            return None
        if load:
            self.loaded[key] = _now()
        return key

    @staticmethod
    def _timings(pin: int, pout: int) -> dict[str, Any]:
        return {
            "total_duration": 5_000_000 + 1_000_000 * pout,
            "load_duration": 1_000_000,
            "prompt_eval_count": pin,
            "prompt_eval_duration": 100_000 * pin,
            "eval_count": pout,
            "eval_duration": 1_000_000 * pout,
        }

    def _stream(self, h: Handler, reply: Reply, lines: Iterator[dict[str, Any]]) -> None:
        error = reply.extra.get("stream_error")
        after = int(reply.extra.get("stream_error_after", 1))

        def encoded() -> Iterator[bytes]:
            for i, obj in enumerate(lines):
                if error is not None and i == after:
                    yield (json.dumps({"error": error}) + "\n").encode()
                    return
                yield (json.dumps(obj) + "\n").encode()

        h.send_stream(encoded(), reply, content_type=NDJSON)

    def _tool_calls(self, reply: Reply) -> list[dict[str, Any]]:
        return [
            {"function": {"name": t["name"], "arguments": t.get("arguments", {})}}
            for t in reply.tool_calls or []
        ]

    # -- routes --------------------------------------------------------------------------
    def root(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        h.send_raw(200, b"Ollama is running", content_type="text/plain; charset=utf-8")

    def version_route(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        h.send_json(200, {"version": self.version})

    def chat(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        body = req.json or {}
        name = self._known(h, body.get("model"))
        if name is None:
            return
        model = reply.model or body["model"]
        prompt = " ".join(str(m.get("content", "")) for m in body.get("messages") or [])
        pin, pout = reply.token_usage(prompt)
        tool_calls = self._tool_calls(reply)
        done_reason = reply.finish_reason or "stop"
        # Ollama only returns thinking when the request asked for it (think: true).
        thinking = reply.thinking if body.get("think") not in (None, False) else None
        final = {
            "model": model,
            "created_at": _now(),
            "message": {"role": "assistant", "content": ""},
            "done_reason": done_reason,
            "done": True,
            **self._timings(pin, pout),
        }
        if not body.get("stream", True):
            message: dict[str, Any] = {"role": "assistant", "content": reply.text}
            if thinking:
                message["thinking"] = thinking
            if tool_calls:
                message["tool_calls"] = tool_calls
            h.send_json(200, {**final, "message": message})
            return

        def lines() -> Iterator[dict[str, Any]]:
            def piece(**msg: Any) -> dict[str, Any]:
                return {
                    "model": model,
                    "created_at": _now(),
                    "message": {"role": "assistant", "content": "", **msg},
                    "done": False,
                }

            if thinking:
                for t in Reply(text=thinking).pieces():
                    yield piece(thinking=t)
            for text in reply.pieces() if reply.text else []:
                yield piece(content=text)
            if tool_calls:
                yield piece(tool_calls=tool_calls)
            yield final

        self._stream(h, reply, lines())

    def generate(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        body = req.json or {}
        name = self._known(h, body.get("model"))
        if name is None:
            return
        model = reply.model or body["model"]
        pin, pout = reply.token_usage(str(body.get("prompt", "")))
        thinking = reply.thinking if body.get("think") not in (None, False) else None
        final = {
            "model": model,
            "created_at": _now(),
            "response": "",
            "done": True,
            "done_reason": reply.finish_reason or "stop",
            "context": list(range(1, pin + pout + 1)),
            **self._timings(pin, pout),
        }
        if not body.get("stream", True):
            out = {**final, "response": reply.text}
            if thinking:
                out["thinking"] = thinking
            h.send_json(200, out)
            return

        def lines() -> Iterator[dict[str, Any]]:
            base = {"model": model, "created_at": _now(), "done": False}
            if thinking:
                for t in Reply(text=thinking).pieces():
                    yield {**base, "response": "", "thinking": t}
            for text in reply.pieces() if reply.text else []:
                yield {**base, "response": text}
            yield final

        self._stream(h, reply, lines())

    def embed(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        body = req.json or {}
        name = self._known(h, body.get("model"))
        if name is None:
            return
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else list(texts or [])
        dims = int(body.get("dimensions") or reply.extra.get("dimensions", 8))
        vectors = [_vector(t, dims) for t in texts]
        tokens = sum(max(1, len(t.split())) for t in texts)
        h.send_json(
            200,
            {
                "model": body["model"],
                "embeddings": vectors,
                "total_duration": 2_000_000,
                "load_duration": 500_000,
                "prompt_eval_count": tokens,
            },
        )

    def _details(self, facts: dict[str, Any]) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": facts["family"],
            "families": [facts["family"]],
            "parameter_size": facts["parameter_size"],
            "quantization_level": facts["quantization"],
        }

    def tags(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        h.send_json(
            200,
            {
                "models": [
                    {
                        "name": name,
                        "model": name,
                        "modified_at": "2025-06-01T10:00:00.000000000Z",
                        "size": facts["size"],
                        "digest": _digest(name),
                        "details": self._details(facts),
                    }
                    for name, facts in self.catalog.items()
                ]
            },
        )

    def show(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        body = req.json or {}
        name = self._known(h, body.get("model") or body.get("name"), load=False)
        if name is None:
            return
        facts = self.catalog[name]
        arch = facts["family"]
        info: dict[str, Any] = {
            "general.architecture": arch,
            "general.basename": name.split(":")[0],
            "general.parameter_count": _parameter_count(facts["parameter_size"]),
            "general.quantization_version": 2,
            f"{arch}.context_length": facts["context_length"],
            f"{arch}.embedding_length": 2048,
            f"{arch}.block_count": 16,
        }
        h.send_json(
            200,
            {
                "license": "fake license",
                "modelfile": f"FROM {name}\n",
                "parameters": 'stop "<|eot_id|>"',
                "template": "{{ .Prompt }}",
                "details": self._details(facts),
                "model_info": info,
                "capabilities": facts["capabilities"],
                "modified_at": "2025-06-01T10:00:00.000000000Z",
            },
        )

    def ps(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        h.send_json(
            200,
            {
                "models": [
                    {
                        "name": name,
                        "model": name,
                        "size": self.catalog[name]["size"],
                        "digest": _digest(name),
                        "details": self._details(self.catalog[name]),
                        "expires_at": "2099-01-01T00:00:00.000000000Z",
                        "size_vram": self.catalog[name]["size"],
                        "context_length": min(4096, self.catalog[name]["context_length"]),
                    }
                    for name in self.loaded
                    if name in self.catalog
                ]
            },
        )

    def pull(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        body = req.json or {}
        name = str(body.get("model") or body.get("name") or "")
        key = canonical(name)
        facts = self.registry.get(key) or self.catalog.get(key)
        if facts is None:
            # Real Ollama reports an unknown name inside the (200) stream or as 500.
            message = "pull model manifest: file does not exist"
            if body.get("stream", True):
                h.send_stream(
                    [
                        (json.dumps({"status": "pulling manifest"}) + "\n").encode(),
                        (json.dumps({"error": message}) + "\n").encode(),
                    ],
                    reply,
                    content_type=NDJSON,
                )
            else:
                h.send_json(500, {"error": message})
            return
        total = int(reply.extra.get("pull_total", facts["size"]))
        steps = int(reply.extra.get("pull_steps", 4))
        digest = "sha256:" + _digest(key)

        def lines() -> Iterator[dict[str, Any]]:
            yield {"status": "pulling manifest"}
            for i in range(steps + 1):
                yield {
                    "status": f"pulling {digest[7:19]}",
                    "digest": digest,
                    "total": total,
                    "completed": total * i // steps,
                }
            yield {"status": "verifying sha256 digest"}
            yield {"status": "writing manifest"}
            self.catalog[key] = facts  # "installed" once the manifest is written
            yield {"status": "success"}

        if not body.get("stream", True):
            for _ in lines():
                pass
            h.send_json(200, {"status": "success"})
            return
        self._stream(h, reply, lines())


def _status_text(status: int) -> str:
    return {
        400: "bad request",
        401: "unauthorized",
        403: "forbidden",
        404: "not found",
        429: "too many requests",
        500: "internal server error",
        502: "bad gateway",
        503: "server busy, please try again. maximum pending requests exceeded",
    }.get(status, f"error {status}")


def _vector(text: str, dims: int) -> list[float]:
    """A deterministic unit vector for ``text`` (same text → same vector)."""
    seed = hashlib.sha256(text.encode()).digest()
    raw = [(seed[i % len(seed)] - 127.5) / 127.5 + 0.001 * i for i in range(dims)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]


def _parameter_count(size: str) -> int:
    unit = {"K": 1e3, "M": 1e6, "B": 1e9}.get(size[-1:].upper(), 1.0)
    try:
        return int(float(size.rstrip("KMBkmb")) * unit)
    except ValueError:
        return 0
