"""The clients bench_core compares, each run in a fresh worker process pinned to one core.

``python -m bench.clients --client NAME --url URL`` builds one client, warms it up and
prints ``ready``; then for each number ``N`` read from stdin it times ``N`` sequential
non-streaming chats and ``N`` streamed chats against the stub (:mod:`bench.stub`) and
prints one JSON line: ``{"plain": [s...], "ttfc": [s...], "total": [s...]}``. Every
client sends the same request and parses the whole answer (the JSON body; every streamed
event up to the end); "time to first chunk" is when the first piece of answer text is in
the caller's hands.

Workers run in their own processes so that every library starts equally cold, is measured
on the same core, and LiteLLM can come from its own venv (see :mod:`bench.compare_env`).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

MODEL = "bench-model"
MESSAGES = [{"role": "user", "content": "hi"}]
Plain = Callable[[], str]
Stream = Callable[[], Iterator[str]]

# name -> (API the client speaks, what it is); bench_core shows them in this order
CLIENTS: dict[str, tuple[str, str]] = {
    "raw_socket": ("openai", "raw socket (keep-alive, hand-written HTTP)"),
    "raw_httpx": ("openai", "raw httpx.Client"),
    "llmcore_provider": ("openai", "llmcore provider alone (no router, hooks, metrics)"),
    "llmcore": ("openai", "llmcore Client (core openai type; router + hooks, metrics off)"),
    "llmcore_hook": ("openai", "llmcore Client + one pass-through generation hook"),
    "llmcore_metrics": ("openai", "llmcore Client + metrics on (default sqlite sink)"),
    "openai_sdk": ("openai", "openai SDK"),
    "litellm": ("openai", "LiteLLM completion()"),
    "ollama_raw_httpx": ("ollama", "raw httpx.Client on /api/chat"),
    "llmcore_ollama": ("ollama", "llmcore Client (ollama plugin) + metrics on"),
    "ollama_client": ("ollama", "ollama Python client"),
}


def openai_body(stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": MODEL, "messages": MESSAGES}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


# -- raw socket ---------------------------------------------------------------------------
def make_raw_socket(url: str) -> tuple[Plain, Stream]:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def request(stream: bool) -> bytes:
        body = json.dumps(openai_body(stream)).encode()
        return (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    plain_req, stream_req = request(False), request(True)

    def plain() -> str:
        sock.sendall(plain_req)
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += sock.recv(65536)
        head, _, body = buf.partition(b"\r\n\r\n")
        i = head.lower().index(b"content-length:") + 15
        length = int(head[i : head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0 else None])
        while len(body) < length:
            body += sock.recv(65536)
        return str(json.loads(body)["choices"][0]["message"]["content"])

    def stream() -> Iterator[str]:
        sock.sendall(stream_req)
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += sock.recv(65536)
        buf = buf.partition(b"\r\n\r\n")[2]
        while True:  # chunked transfer encoding, each chunk one SSE event
            while b"\r\n" not in buf:
                buf += sock.recv(65536)
            size_line, _, buf = buf.partition(b"\r\n")
            size = int(size_line, 16)
            while len(buf) < size + 2:
                buf += sock.recv(65536)
            chunk, buf = buf[:size], buf[size + 2 :]
            if size == 0:
                return
            payload = chunk[6:].strip()
            if payload == b"[DONE]":
                continue
            for choice in json.loads(payload).get("choices", ()):
                text = (choice.get("delta") or {}).get("content")
                if text:
                    yield text

    return plain, stream


# -- raw httpx ----------------------------------------------------------------------------
def make_raw_httpx(url: str) -> tuple[Plain, Stream]:
    import httpx

    client = httpx.Client(base_url=url + "/v1")

    def plain() -> str:
        r = client.post("/chat/completions", json=openai_body(False))
        return str(r.json()["choices"][0]["message"]["content"])

    def stream() -> Iterator[str]:
        with client.stream("POST", "/chat/completions", json=openai_body(True)) as r:
            for line in r.iter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    continue
                for choice in json.loads(payload).get("choices", ()):
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        yield text

    return plain, stream


def make_ollama_raw_httpx(url: str) -> tuple[Plain, Stream]:
    import httpx

    client = httpx.Client(base_url=url)

    def plain() -> str:
        r = client.post("/api/chat", json={"model": MODEL, "messages": MESSAGES, "stream": False})
        return str(r.json()["message"]["content"])

    def stream() -> Iterator[str]:
        with client.stream(
            "POST", "/api/chat", json={"model": MODEL, "messages": MESSAGES, "stream": True}
        ) as r:
            for line in r.iter_lines():
                if line:
                    data = json.loads(line)
                    text = data.get("message", {}).get("content")
                    if text:
                        yield text

    return plain, stream


# -- llmcore ------------------------------------------------------------------------------
def llmcore_config(url: str, plugin: str, metrics: bool) -> str:
    base = url + "/v1" if plugin == "openai" else url
    return f"""
providers:
  stub:
    plugin: {plugin}
    base_url: {base}
    api_key: bench-key
    models: [{MODEL}]
    retry: {{max_attempts: 1}}
agents: {{}}
routing: {{state: memory}}
metrics: {{enabled: {"true" if metrics else "false"}}}
"""


class PassThroughHook:
    """A generation hook that only observes: what one plugin's wrapper costs."""

    def __init__(self) -> None:
        import llmcore

        @llmcore.hookimpl(wrapper=True)
        def llmcore_generate(call: Any) -> Any:
            return (yield)

        self.llmcore_generate = llmcore_generate


def make_llmcore(
    url: str,
    plugin: str = "openai",
    metrics: bool = False,
    hook: bool = False,
    provider_only: bool = False,
) -> tuple[Plain, Stream]:
    import llmcore
    from llmcore.config import parse_config
    from llmcore.plugins import PluginManager
    from llmcore.types import ChatRequest, Message

    pm = PluginManager()
    if hook:
        pm.register(PassThroughHook(), name="bench-hook")
    client = llmcore.Client(parse_config(llmcore_config(url, plugin, metrics)), plugin_manager=pm)
    if provider_only:
        provider = client.runtime.providers["stub"]

        def pplain() -> str:
            req = ChatRequest(messages=[Message("user", "hi")], model=MODEL)
            return provider.chat(req).content

        def pstream() -> Iterator[str]:
            req = ChatRequest(messages=[Message("user", "hi")], model=MODEL, stream=True)
            for chunk in provider.stream(req):
                if chunk.content:
                    yield chunk.content

        return pplain, pstream

    def plain() -> str:
        return client.chat(MESSAGES).content

    def stream() -> Iterator[str]:
        for chunk in client.stream(MESSAGES):
            if chunk.content:
                yield chunk.content

    return plain, stream


# -- SDKs ---------------------------------------------------------------------------------
def make_openai_sdk(url: str) -> tuple[Plain, Stream]:
    import openai

    client = openai.OpenAI(base_url=url + "/v1", api_key="bench-key", max_retries=0)

    def plain() -> str:
        r = client.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
        return r.choices[0].message.content or ""

    def stream() -> Iterator[str]:
        for chunk in client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True},
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content

    return plain, stream


def make_litellm(url: str) -> tuple[Plain, Stream]:
    import litellm

    kw = {
        "model": f"openai/{MODEL}",
        "api_base": url + "/v1",
        "api_key": "bench-key",
        "messages": MESSAGES,
        "max_retries": 0,
    }

    def plain() -> str:
        return str(litellm.completion(**kw).choices[0].message.content)

    def stream() -> Iterator[str]:
        for chunk in litellm.completion(stream=True, **kw):
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content

    return plain, stream


def make_ollama_client(url: str) -> tuple[Plain, Stream]:
    import ollama

    client = ollama.Client(host=url)

    def plain() -> str:
        return client.chat(model=MODEL, messages=MESSAGES).message.content or ""

    def stream() -> Iterator[str]:
        for part in client.chat(model=MODEL, messages=MESSAGES, stream=True):
            if part.message.content:
                yield part.message.content

    return plain, stream


def make(name: str, url: str) -> tuple[Plain, Stream]:
    factories: dict[str, Callable[[], tuple[Plain, Stream]]] = {
        "raw_socket": lambda: make_raw_socket(url),
        "raw_httpx": lambda: make_raw_httpx(url),
        "llmcore_provider": lambda: make_llmcore(url, provider_only=True),
        "llmcore": lambda: make_llmcore(url),
        "llmcore_hook": lambda: make_llmcore(url, hook=True),
        "llmcore_metrics": lambda: make_llmcore(url, metrics=True),
        "openai_sdk": lambda: make_openai_sdk(url),
        "litellm": lambda: make_litellm(url),
        "ollama_raw_httpx": lambda: make_ollama_raw_httpx(url),
        "llmcore_ollama": lambda: make_llmcore(url, plugin="ollama", metrics=True),
        "ollama_client": lambda: make_ollama_client(url),
    }
    return factories[name]()


def measure(plain: Plain, stream: Stream, n: int, warmup: int) -> dict[str, list[float]]:
    expected = "Hello there, this is a benchmark reply."
    for _ in range(warmup):
        if plain() != expected or "".join(stream()) != expected:
            raise RuntimeError("the client did not return the stub's answer")
    clock = time.perf_counter
    out: dict[str, list[float]] = {"plain": [], "ttfc": [], "total": []}
    for _ in range(n):
        t0 = clock()
        plain()
        out["plain"].append(clock() - t0)
        t0 = clock()
        first = None
        for _text in stream():
            if first is None:
                first = clock() - t0
        out["total"].append(clock() - t0)
        out["ttfc"].append(first if first is not None else float("nan"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.clients")
    ap.add_argument("--client", required=True, choices=sorted(CLIENTS))
    ap.add_argument("--url", required=True)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--cpu", type=int, default=1)
    args = ap.parse_args()
    from bench.stub import pin

    pin(args.cpu)
    # keep llmcore's state, metrics and config in a throwaway place
    home = tempfile.mkdtemp(prefix="llmcore-bench-")
    atexit.register(shutil.rmtree, home, True)
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        os.environ[var] = os.path.join(home, var.lower())
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    plain, stream = make(args.client, args.url)
    measure(plain, stream, 0, args.warmup)
    print("ready", flush=True)
    # The coordinator asks for small batches in turn from every worker, so that the busy and
    # quiet phases of a shared machine fall on every client alike.
    for line in sys.stdin:
        n = int(line)
        if n <= 0:
            break
        print(json.dumps(measure(plain, stream, n, 0)), flush=True)


if __name__ == "__main__":
    main()
