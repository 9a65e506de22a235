"""Redis is a dependency, not a single point of failure: a frozen (SIGSTOP) redis-server
under async load costs the request path nothing, cooldowns keep working in memory, and the
writes queued meanwhile reach Redis when it wakes up."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from llmcore.client import AsyncClient
from llmcore.config import ProviderConfig, parse_config
from llmcore.errors import RateLimitError
from llmcore.testing import StaticProvider
from llmcore.types import ChatRequest, ChatResponse
from redis_server import RedisServer


class AsyncStatic(StaticProvider):
    """Answers on the event loop itself, so any wait on the loop shows in throughput."""

    type_name: ClassVar[str] = "async-static"

    async def achat(self, request: ChatRequest) -> ChatResponse:
        await asyncio.sleep(0)
        return self.chat(request)


@pytest.fixture()
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path) as server:
        yield server


def _client(state: str) -> AsyncClient:
    cfg = parse_config(
        f"providers: {{}}\nagents: {{}}\nmetrics: {{sinks: []}}\nrouting: {{state: '{state}'}}\n"
    )
    limited = AsyncStatic(ProviderConfig(name="a", plugin="async-static", models=["m1"]))
    # Every call to a is a 429 with a short Retry-After: a cooldown write every ~50 ms.
    limited.fail_with = RateLimitError("a: 429", retry_after=0.05)
    ok = AsyncStatic(ProviderConfig(name="b", plugin="async-static", models=["m1"]))
    return AsyncClient(cfg, providers=[limited, ok])


async def _load(client: AsyncClient, seconds: float, workers: int = 16) -> tuple[int, list[str]]:
    """(answered requests, the failures) in ``seconds`` of ``workers`` concurrent loops."""
    done = 0
    failed: list[str] = []
    end = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done, failed
        while time.monotonic() < end:
            try:
                resp = await client.chat("hi")
                assert resp.provider == "b"
                done += 1
            except Exception as exc:
                failed.append(f"{type(exc).__name__}: {exc}")

    await asyncio.gather(*(worker() for _ in range(workers)))
    return done, failed


@pytest.mark.redis
def test_a_frozen_redis_keeps_async_throughput_within_2x_of_no_redis(
    redis_server: RedisServer, capfd: pytest.CaptureFixture[str]
) -> None:
    assert redis_server.proc is not None
    pid = redis_server.proc.pid

    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {}
        base = _client("memory")
        sick = _client(redis_server.url)
        await _load(sick, 0.3)  # warm up: connected, keys written
        assert sick.router.store.sync()  # type: ignore[attr-defined]
        os.kill(pid, signal.SIGSTOP)
        try:
            # Interleave the two, best of two each, so a busy machine hurts both alike.
            runs: dict[str, list[int]] = {"memory": [], "frozen": []}
            for _ in range(2):
                for name, client in (("memory", base), ("frozen", sick)):
                    done, failed = await _load(client, 1.0)
                    assert not failed, failed[:3]
                    runs[name].append(done)
            out["runs"] = runs
            # Cooldowns still work while Redis sleeps: a is skipped, not called each time.
            resp = await sick.chat("hi")
            # The background thread notices on its own schedule (one timeout per pass, a
            # pass at most every retry_interval): give it a few passes on a busy machine.
            noticed_by = time.monotonic() + 8.0
            while sick.router.store.healthy and time.monotonic() < noticed_by:  # type: ignore[attr-defined]
                await asyncio.sleep(0.1)
            out["healthy_while_frozen"] = sick.router.store.healthy  # type: ignore[attr-defined]
            out["attempts"] = [(a.provider, a.skipped) for a in resp.attempts]
        finally:
            os.kill(pid, signal.SIGCONT)
        # Awake again: the background thread catches up and the queued writes land.
        assert sick.router.store.sync(timeout=10.0)  # type: ignore[attr-defined]
        out["recovered"] = sick.router.store.healthy  # type: ignore[attr-defined]
        await base.aclose()
        await sick.aclose()
        return out

    out = asyncio.run(main())
    best_memory, best_frozen = max(out["runs"]["memory"]), max(out["runs"]["frozen"])
    assert best_frozen * 2 >= best_memory, out["runs"]
    assert out["healthy_while_frozen"] is False
    assert out["recovered"] is True
    err = capfd.readouterr().err
    print("requests per second (memory store vs frozen Redis):", out["runs"])
    assert err.count("is unreachable") == 1  # said once, not once per request
    assert "answers again" in err


@pytest.mark.redis
def test_cooldowns_written_while_redis_was_down_reach_it_afterwards(
    redis_server: RedisServer,
) -> None:
    import redis
    from llmcore.state import Cooldown, RedisStore

    assert redis_server.proc is not None
    store = RedisStore(redis_server.url, recheck=0.0, retry_interval=0.2, timeout=0.1)
    os.kill(redis_server.proc.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        store.put(Cooldown("p/m", time.time() + 60, "rate limited"))
        assert "p/m" in store.active()
        put_took = time.monotonic() - t0
        assert store.sync(timeout=1.0) is False
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)
    assert store.sync(timeout=10.0)
    raw = redis.Redis.from_url(redis_server.url)
    assert raw.get("llmcore:cooldown:p/m") is not None  # nothing lost
    raw.close()
    store.close()
    print(f"put with a frozen Redis took {put_took * 1000:.2f} ms")
