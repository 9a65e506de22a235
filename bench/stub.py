"""A fast local HTTP/1.1 stub for benchmarks: prebuilt replies, keep-alive, one core.

It answers the calls the benchmarks make, with bytes built once at start-up so that the
stub's own work per request is tiny and constant:

* OpenAI: ``POST /v1/chat/completions`` (a JSON reply, or SSE when the body asks for
  ``"stream": true``; a final usage chunk when it asks for ``include_usage``),
  ``POST /v1/completions``, ``GET /v1/models``;
* Ollama: ``POST /api/chat`` (NDJSON stream unless the body says ``"stream": false``, as
  Ollama does), ``GET /api/tags``, ``GET /api/version``.

It runs in its own process pinned to one core (:func:`running`), and :func:`pin_client`
pins the measuring process to the other, so the stub does not compete with what is
measured. Run alone: ``python -m bench.stub [--port P] [--cpu N]`` prints the port.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

MODEL = "bench-model"
WORDS = ["Hello", " there,", " this", " is", " a", " benchmark", " reply", "."]
TEXT = "".join(WORDS)
CREATED = 1_700_000_000
OLLAMA_TS = "2024-01-01T00:00:00.000000Z"


def _response(body: bytes, content_type: str) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: "
        + content_type.encode()
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: keep-alive\r\n\r\n"
        + body
    )


def _chunked(parts: list[bytes], content_type: str) -> bytes:
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: "
        + content_type.encode()
        + b"\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
    )
    body = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts)
    return head + body + b"0\r\n\r\n"


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def build_replies() -> dict[str, bytes]:
    """Every reply the stub can give, as complete HTTP responses."""
    usage = {"prompt_tokens": 5, "completion_tokens": len(WORDS), "total_tokens": 5 + len(WORDS)}
    chat = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": TEXT},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }
    completion = {
        "id": "cmpl-bench",
        "object": "text_completion",
        "created": CREATED,
        "model": MODEL,
        "choices": [{"index": 0, "text": TEXT, "logprobs": None, "finish_reason": "stop"}],
        "usage": usage,
    }

    def sse(with_usage: bool) -> bytes:
        base = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": MODEL,
            "system_fingerprint": None,
        }
        events = [
            {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": ""},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ],
            }
        ]
        events += [
            {
                **base,
                "choices": [
                    {"index": 0, "delta": {"content": w}, "logprobs": None, "finish_reason": None}
                ],
            }
            for w in WORDS
        ]
        events.append(
            {
                **base,
                "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}],
            }
        )
        if with_usage:
            events.append({**base, "choices": [], "usage": usage})
        parts = [b"data: " + _dumps(e) + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]
        return _chunked(parts, "text/event-stream; charset=utf-8")

    def ollama_line(content: str, done: bool) -> dict[str, object]:
        line: dict[str, object] = {
            "model": MODEL,
            "created_at": OLLAMA_TS,
            "message": {"role": "assistant", "content": content},
            "done": done,
        }
        if done:
            line.update(
                done_reason="stop",
                total_duration=1000,
                load_duration=10,
                prompt_eval_count=5,
                prompt_eval_duration=100,
                eval_count=len(WORDS),
                eval_duration=800,
            )
        return line

    ndjson = [_dumps(ollama_line(w, False)) + b"\n" for w in WORDS]
    ndjson.append(_dumps(ollama_line("", True)) + b"\n")
    models = {
        "object": "list",
        "data": [{"id": MODEL, "object": "model", "created": CREATED, "owned_by": "bench"}],
    }
    tags = {
        "models": [
            {
                "name": MODEL,
                "model": MODEL,
                "modified_at": OLLAMA_TS,
                "size": 1,
                "digest": "0" * 64,
                "details": {
                    "format": "gguf",
                    "family": "bench",
                    "parameter_size": "1M",
                    "quantization_level": "Q4_0",
                },
            }
        ]
    }
    return {
        "chat": _response(_dumps(chat), "application/json"),
        "chat_sse": sse(False),
        "chat_sse_usage": sse(True),
        "completion": _response(_dumps(completion), "application/json"),
        "models": _response(_dumps(models), "application/json"),
        "ollama_chat": _response(_dumps(ollama_line(TEXT, True)), "application/json"),
        "ollama_stream": _chunked(ndjson, "application/x-ndjson"),
        "ollama_tags": _response(_dumps(tags), "application/json"),
        "ollama_version": _response(b'{"version":"0.12.0"}', "application/json"),
        "not_found": (
            b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
            b"Content-Length: 21\r\nConnection: keep-alive\r\n\r\n"
            b'{"error":"not found"}'
        ),
    }


class StubProtocol(asyncio.Protocol):
    """One connection: parse pipelined HTTP/1.1 requests, answer each with prebuilt bytes."""

    replies: dict[str, bytes] = {}

    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end]
            length = 0
            lower = head.lower()
            i = lower.find(b"content-length:")
            if i >= 0:
                j = lower.find(b"\r\n", i)
                length = int(head[i + 15 : j if j > 0 else len(head)])
            total = end + 4 + length
            if len(self.buf) < total:
                return
            body = self.buf[end + 4 : total]
            self.buf = self.buf[total:]
            assert self.transport is not None
            self.transport.write(self.reply(head, body))

    def reply(self, head: bytes, body: bytes) -> bytes:
        r = self.replies
        line = head.split(b"\r\n", 1)[0]
        path = line.split(b" ")[1].split(b"?")[0]
        compact = body.replace(b" ", b"")
        if path.endswith(b"/chat/completions"):
            if b'"stream":true' in compact:
                return r["chat_sse_usage" if b"include_usage" in body else "chat_sse"]
            return r["chat"]
        if path == b"/api/chat":
            return r["ollama_chat" if b'"stream":false' in compact else "ollama_stream"]
        if path.endswith(b"/completions"):
            return r["completion"]
        if path.endswith(b"/models"):
            return r["models"]
        if path == b"/api/tags":
            return r["ollama_tags"]
        if path == b"/api/version":
            return r["ollama_version"]
        return r["not_found"]


async def serve(port: int) -> None:
    StubProtocol.replies = build_replies()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(StubProtocol, "127.0.0.1", port, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def core(cpu: int, cpus: set[int] | None = None) -> int:
    """The core :func:`pin` means by ``cpu``: the ``cpu``-th of ``cpus`` (default: the
    cores this process may use), counted round."""
    ordered = sorted(os.sched_getaffinity(0) if cpus is None else cpus)
    return ordered[cpu % len(ordered)]


def pin(cpu: int) -> None:
    """Pin this process to one core (no-op where the OS or core count does not allow it)."""
    try:
        if len(os.sched_getaffinity(0)) > 1:
            os.sched_setaffinity(0, {core(cpu)})
    except (AttributeError, OSError):
        pass


def pin_client() -> None:
    """Pin the measuring process to the core the stub does not use."""
    pin(1)


@contextlib.contextmanager
def running(cpu: int = 0) -> Iterator[str]:
    """Start the stub in a subprocess pinned to core ``cpu``; yield ``http://127.0.0.1:PORT``."""
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.stub", "--cpu", str(cpu)],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = proc.stdout.readline().strip()
        if not port:
            raise RuntimeError("the benchmark stub did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.stub")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cpu", type=int, default=0)
    args = ap.parse_args()
    pin(args.cpu)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
