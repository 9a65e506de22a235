"""The Ollama plugin against raw HTTP calls to the same local stub (``bench/stub.py``).

Measured in one run, against the stub's ``/api/chat`` (prebuilt Ollama answers):

* async, 100 in flight: raw aiohttp, raw ``httpx.AsyncClient``, and
  ``OllamaProvider.achat`` (aiohttp underneath). Ratio against raw aiohttp; budget >= 0.8x.
* sync, one at a time: raw ``httpx.Client`` vs ``OllamaProvider.chat`` and ``.stream``
  (time per call; ratio against raw httpx doing the same).
* "Ollama is not running": how long ``chat`` takes to raise ``ProviderConnectionError``
  for a port nothing listens on (median).

Each measurement is the best of a few interleaved rounds (the machine is shared).
"""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

IN_FLIGHT = 100
MODEL = "bench-model"
PLAIN = {"model": MODEL, "messages": [{"role": "user", "content": "ping"}], "stream": False}
STREAM = {**PLAIN, "stream": True}


async def drive(call: Callable[[], Awaitable[Any]], total: int) -> float:
    """``total`` calls over ``IN_FLIGHT`` workers; requests per second."""
    per = total // IN_FLIGHT

    async def worker() -> None:
        for _ in range(per):
            await call()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return per * IN_FLIGHT / (time.perf_counter() - t0)


async def raw_aiohttp(url: str, total: int) -> float:
    import aiohttp

    data = json.dumps(PLAIN).encode()
    async with aiohttp.ClientSession() as s:

        async def call() -> Any:
            async with s.post(
                url + "/api/chat", data=data, headers={"Content-Type": "application/json"}
            ) as r:
                return json.loads(await r.read())

        await drive(call, IN_FLIGHT)
        return await drive(call, total)


async def raw_httpx(url: str, total: int) -> float:
    import httpx

    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    async with httpx.AsyncClient(limits=limits, timeout=60) as c:

        async def call() -> Any:
            return (await c.post(url + "/api/chat", json=PLAIN)).json()

        await drive(call, IN_FLIGHT)
        return await drive(call, total)


def provider(url: str) -> Any:
    from llmcore.config import ProviderConfig
    from llmcore_ollama import OllamaProvider

    return OllamaProvider(
        ProviderConfig(name="bench", plugin="ollama", base_url=url, models=[MODEL])
    )


def request() -> Any:
    from llmcore import ChatRequest, Message

    return ChatRequest(messages=[Message("user", "ping")], model=MODEL)


async def plugin_async(url: str, total: int) -> float:
    p, req = provider(url), request()
    try:
        await drive(lambda: p.achat(req), IN_FLIGHT)
        return await drive(lambda: p.achat(req), total)
    finally:
        await p.aclose()


def per_call(fn: Callable[[], Any], n: int) -> float:
    for _ in range(20):
        fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def sync_rows(url: str, n: int, rounds: int) -> dict[str, float]:
    import httpx

    p, req = provider(url), request()
    out: dict[str, float] = {}
    with httpx.Client(base_url=url, timeout=60) as c:

        def raw_stream() -> None:
            with c.stream("POST", "/api/chat", json=STREAM) as r:
                for line in r.iter_lines():
                    if line:
                        json.loads(line)

        cases: dict[str, Callable[[], Any]] = {
            "raw httpx, chat": lambda: c.post("/api/chat", json=PLAIN).json(),
            "OllamaProvider.chat": lambda: p.chat(req),
            "raw httpx, NDJSON stream": raw_stream,
            "OllamaProvider.stream": lambda: list(p.stream(req)),
        }
        for _ in range(rounds):
            for name, fn in cases.items():
                out[name] = min(out.get(name, float("inf")), per_call(fn, n))
    p.close()
    return out


def not_running_ms(samples: int) -> float:
    from llmcore import ProviderConnectionError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p, req = provider(f"http://127.0.0.1:{port}"), request()
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        try:
            p.chat(req)
        except ProviderConnectionError:
            times.append(time.perf_counter() - t0)
    p.close()
    return statistics.median(times) * 1000


def run(quick: bool = False) -> list[dict[str, Any]]:
    from bench.stub import running

    total = 1000 if quick else 3000
    rounds = 2 if quick else 3
    n = 200 if quick else 500
    with running() as url:
        # Rounds interleave the cases, so a burst of load from other processes on the
        # shared machine hits all of them alike; each keeps its best round.
        # httpx's async client is ~20x slower here: fewer calls keep the run short.
        cases = (
            ("raw aiohttp", raw_aiohttp, total),
            ("OllamaProvider.achat", plugin_async, total),
            ("raw httpx.AsyncClient", raw_httpx, 5 * IN_FLIGHT),
        )
        rates: dict[str, float] = {}
        for _ in range(rounds):
            for name, fn, calls in cases:
                rates[name] = max(rates.get(name, 0.0), asyncio.run(fn(url, calls)))
        sync = sync_rows(url, n, rounds)
    rows: list[dict[str, Any]] = []
    base = rates["raw aiohttp"]
    for name, rate in rates.items():
        row: dict[str, Any] = {
            "group": "ollama",
            "name": f"{name}, {IN_FLIGHT} in flight",
            "value": rate,
            "unit": "req/s",
            "ratio": rate / base,
        }
        if name == "OllamaProvider.achat":
            row.update(budget=">= 0.8x raw aiohttp", met=rate / base >= 0.8)
        rows.append(row)
    for raw, ours in (
        ("raw httpx, chat", "OllamaProvider.chat"),
        ("raw httpx, NDJSON stream", "OllamaProvider.stream"),
    ):
        rows.append(
            {
                "group": "ollama",
                "name": f"{raw}, sequential",
                "value": sync[raw] * 1e6,
                "unit": "us/call",
                "ratio": 1.0,
            }
        )
        rows.append(
            {
                "group": "ollama",
                "name": f"{ours}, sequential",
                "value": sync[ours] * 1e6,
                "unit": "us/call",
                "ratio": sync[ours] / sync[raw],
            }
        )
    ms = not_running_ms(20)
    rows.append(
        {
            "group": "ollama",
            "name": "'Ollama is not running' error",
            "value": ms,
            "unit": "ms",
            "budget": "milliseconds",
            "met": ms < 50,
            "note": "chat() to a closed port until ProviderConnectionError (median)",
        }
    )
    return rows


if __name__ == "__main__":
    for r in run(quick=True):
        print(r)
