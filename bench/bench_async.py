"""Throughput of the OpenAI-compatible path: 100 requests in flight, and sync per-call cost.

A local stub (aiohttp.web in its own process, so it does not share the client's CPU time
slice) answers every ``POST /v1/chat/completions`` with the same small JSON. Measured in
the same run, against that stub:

* async, 100 in flight: raw aiohttp, raw ``httpx.AsyncClient``, the llmcore provider
  called directly (``OpenAIProvider.achat``: llmcore's own transport, HTTP/1.1 over
  asyncio with the pure parser of ``llmcore.http.h1``, so it can be faster than raw
  aiohttp: that margin is what pays for the router, hooks and metrics),
  and ``llmcore.AsyncClient.chat`` (router, hooks, metrics; with the default metrics and
  with metrics off, to tell the router's cost from the sinks'). Ratios are against raw
  aiohttp; the budget is >= 0.85x for the client (default metrics on). "Default
  metrics" is the default config (the ``sqlite`` sink) with the database in a temporary
  directory, so the benchmark never writes into the user's own ``metrics.db``.
* sync, one at a time: raw ``httpx.Client``, the provider's ``chat`` (httpcore's pool
  driven directly, without ``httpx.Client``'s per-request machinery), and
  ``llmcore.Client.chat``; the ratio is time per call against raw httpx; the budget is
  <= 1.05x (default metrics on).

Each measurement takes the best of a few rounds (the machine is shared; the best round is
the least disturbed one).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

IN_FLIGHT = 100

STUB = r"""
import asyncio, json, sys
from aiohttp import web

BODY = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000,
    "model": "bench-model",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "pong"},
                 "finish_reason": "stop", "logprobs": None}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}).encode()

async def chat(request):
    await request.read()
    return web.Response(body=BODY, content_type="application/json")

async def main():
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print(port, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""

REQUEST = {"model": "bench-model", "messages": [{"role": "user", "content": "ping"}]}


def start_stub() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", STUB], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.isdigit():
        proc.kill()
        raise RuntimeError(f"the stub server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{line}/v1"


async def drive(call: Callable[[], Awaitable[Any]], total: int) -> float:
    """Run ``total`` calls with ``IN_FLIGHT`` workers; return requests per second."""
    per_worker = total // IN_FLIGHT

    async def worker() -> None:
        for _ in range(per_worker):
            await call()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return per_worker * IN_FLIGHT / (time.perf_counter() - t0)


async def raw_aiohttp(url: str, total: int) -> float:
    import aiohttp

    async with aiohttp.ClientSession() as s:
        data = json.dumps(REQUEST).encode()

        async def call() -> Any:
            async with s.post(
                url + "/chat/completions", data=data, headers={"Content-Type": "application/json"}
            ) as r:
                return json.loads(await r.read())

        await drive(call, IN_FLIGHT)  # warm the pool
        return await drive(call, total)


async def raw_httpx(url: str, total: int) -> float:
    import httpx

    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    async with httpx.AsyncClient(limits=limits, timeout=60) as c:

        async def call() -> Any:
            r = await c.post(url + "/chat/completions", json=REQUEST)
            return r.json()

        await drive(call, IN_FLIGHT)
        return await drive(call, total)


def _provider(url: str) -> Any:
    from llmcore.config import ProviderConfig
    from llmcore.openai_compat import OpenAIProvider

    return OpenAIProvider(
        ProviderConfig(name="stub", plugin="openai", base_url=url, models=["bench-model"])
    )


async def llmcore_provider(url: str, total: int) -> float:
    from llmcore.types import ChatRequest, Message

    p = _provider(url)
    req = ChatRequest(messages=[Message("user", "ping")], model="bench-model")
    try:
        await drive(lambda: p.achat(req), IN_FLIGHT)
        return await drive(lambda: p.achat(req), total)
    finally:
        await p.aclose()


def _default_metrics_config() -> Any:
    """The default config (metrics on, the ``sqlite`` sink), with the database in a
    temporary directory: a benchmark must not fill the user's own metrics with its events."""
    import tempfile

    from llmcore.config import Config, MetricsConfig

    global _TMP
    if _TMP is None:
        _TMP = tempfile.TemporaryDirectory(prefix="llmcore-bench-")
    db = os.path.join(_TMP.name, "metrics.db")
    return Config(providers={}, agents={}, metrics=MetricsConfig(options={"sqlite": {"path": db}}))


_TMP: Any = None


async def llmcore_client(url: str, total: int) -> float:
    import llmcore

    cfg = _default_metrics_config()
    async with llmcore.AsyncClient(cfg, providers=[_provider(url)]) as client:
        await drive(lambda: client.chat("ping"), IN_FLIGHT)
        return await drive(lambda: client.chat("ping"), total)


def _sync_timed(call: Callable[[], Any], n: int) -> float:
    for _ in range(20):
        call()
    t0 = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - t0) / n


async def llmcore_client_no_metrics(url: str, total: int) -> float:
    import llmcore
    from llmcore.config import Config, MetricsConfig

    cfg = Config(providers={}, agents={}, metrics=MetricsConfig(enabled=False))
    async with llmcore.AsyncClient(cfg, providers=[_provider(url)]) as client:
        await drive(lambda: client.chat("ping"), IN_FLIGHT)
        return await drive(lambda: client.chat("ping"), total)


def sync_raw(url: str, n: int) -> float:
    import httpx

    with httpx.Client(timeout=60) as c:
        return _sync_timed(lambda: c.post(url + "/chat/completions", json=REQUEST).json(), n)


def sync_provider(url: str, n: int) -> float:
    from llmcore.types import ChatRequest, Message

    p = _provider(url)
    req = ChatRequest(messages=[Message("user", "ping")], model="bench-model")
    try:
        return _sync_timed(lambda: p.chat(req), n)
    finally:
        p.close()


def sync_llmcore(url: str, n: int) -> float:
    import llmcore

    with llmcore.Client(_default_metrics_config(), providers=[_provider(url)]) as client:
        return _sync_timed(lambda: client.chat("ping"), n)


def sync_llmcore_no_metrics(url: str, n: int) -> float:
    import llmcore
    from llmcore.config import Config, MetricsConfig

    cfg = Config(providers={}, agents={}, metrics=MetricsConfig(enabled=False))
    with llmcore.Client(cfg, providers=[_provider(url)]) as client:
        return _sync_timed(lambda: client.chat("ping"), n)


def run(quick: bool = False) -> list[dict[str, Any]]:
    total = 1000 if quick else 3000
    rounds = 2 if quick else 3
    sync_n = 200 if quick else 600
    os.environ.setdefault("LLMCORE_CONFIG", os.devnull)  # never read a user config here
    async_cases = (
        ("raw aiohttp", raw_aiohttp),
        ("raw httpx.AsyncClient", raw_httpx),
        ("llmcore provider achat", llmcore_provider),
        ("llmcore AsyncClient.chat", llmcore_client),
        ("llmcore AsyncClient.chat, metrics off", llmcore_client_no_metrics),
    )
    sync_cases = (
        ("raw httpx.Client", sync_raw),
        ("llmcore provider chat", sync_provider),
        ("llmcore Client.chat", sync_llmcore),
        ("llmcore Client.chat, metrics off", sync_llmcore_no_metrics),
    )
    proc, url = start_stub()
    rates: dict[str, float] = {}
    per_call: dict[str, float] = {}
    try:
        # Rounds interleave the cases, so a burst of load from other processes hits all
        # of them alike; each case keeps its best round.
        for _ in range(rounds):
            for name, fn in async_cases:
                rate = asyncio.run(fn(url, total))  # type: ignore[operator]
                rates[name] = max(rates.get(name, 0.0), rate)
            for name, sfn in sync_cases:
                t = sfn(url, sync_n)  # type: ignore[operator]
                per_call[name] = min(per_call.get(name, float("inf")), t)
    finally:
        proc.kill()
        proc.wait()
        global _TMP
        if _TMP is not None:
            _TMP.cleanup()
            _TMP = None
    base = rates["raw aiohttp"]
    rows: list[dict[str, Any]] = []
    for name, rate in rates.items():
        row: dict[str, Any] = {
            "group": "async",
            "name": f"{name}, {IN_FLIGHT} in flight",
            "value": rate,
            "unit": "req/s",
            "ratio": rate / base,
        }
        if name == "llmcore AsyncClient.chat":
            off = rates["llmcore AsyncClient.chat, metrics off"]
            direct = rates["llmcore provider achat"]
            row.update(
                budget=">= 0.85x raw aiohttp",
                met=rate / base >= 0.85,
                note=f"per request: transport {1e6 / direct:.0f} us, router+hooks "
                f"{1e6 / off - 1e6 / direct:.0f} us, default metrics sinks "
                f"{1e6 / rate - 1e6 / off:.0f} us (CPU time at {IN_FLIGHT} in flight)",
            )
        rows.append(row)
    raw_sync = per_call["raw httpx.Client"]
    for name, t in per_call.items():
        row = {
            "group": "async",
            "name": f"{name}, sequential",
            "value": t * 1e6,
            "unit": "us/call",
            "ratio": t / raw_sync,
        }
        if name == "llmcore Client.chat":
            row.update(budget="<= 1.05x raw httpx", met=t / raw_sync <= 1.05)
        rows.append(row)
    return rows


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(r)
