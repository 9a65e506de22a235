"""Through the Client, a hostile first provider costs a failover within its deadline."""

from __future__ import annotations

import asyncio
import time

import llmcore
import pytest
from llmcore.config import Config, ProviderConfig, RetryConfig
from llmcore.openai_compat import OpenAIProvider
from llmcore.testing.contract import HOSTILE_LIMITS, HOSTILE_TIMEOUT
from llmcore.testing.fakes import OpenAIFake
from llmcore.testing.hostile import HostileServer


def providers(hostile: HostileServer, fake: OpenAIFake) -> list[OpenAIProvider]:
    once = RetryConfig(max_attempts=1)
    return [
        OpenAIProvider(
            ProviderConfig(
                name="hostile",
                plugin="openai",
                priority=1,
                base_url=hostile.base_url,
                models=["fake-model"],
                timeout=HOSTILE_TIMEOUT,
                limits=HOSTILE_LIMITS,
                retry=once,
            )
        ),
        OpenAIProvider(
            ProviderConfig(
                name="healthy",
                plugin="openai",
                priority=2,
                base_url=fake.base_url,
                models=["fake-model"],
            )
        ),
    ]


@pytest.mark.parametrize("fault", ["silence", "trickle", "gzip_bomb", "redirect", "error_in_200"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_hostile_first_provider_fails_over_to_the_next(fault: str, mode: str) -> None:
    with HostileServer() as hostile, OpenAIFake() as fake:
        hostile.fault = fault
        cfg = Config(providers={}, agents={}, metrics=llmcore.config.MetricsConfig(enabled=False))
        t0 = time.monotonic()
        if mode == "sync":
            with llmcore.Client(cfg, providers=providers(hostile, fake)) as client:
                resp = client.chat("hi", model="fake-model")
        else:

            async def run() -> llmcore.ChatResponse:
                async with llmcore.AsyncClient(cfg, providers=providers(hostile, fake)) as c:
                    return await c.chat("hi", model="fake-model")

            resp = asyncio.run(run())
        elapsed = time.monotonic() - t0
    assert resp.provider == "healthy"
    assert [a.provider for a in resp.attempts][:1] == ["hostile"]
    assert not resp.attempts[0].ok and resp.attempts[0].error_type
    # Generous: a hang detector on a loaded machine, not a speed measurement.
    assert elapsed < HOSTILE_TIMEOUT.total + 15
