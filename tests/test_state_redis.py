"""The Redis cooldown store against a real redis-server (started by the test setup,
``scripts/setup-redis.sh``): cooldowns shared between hosts with a TTL. The store's other
behaviour, on files and memory, is unit-tested in core/tests/test_state.py."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator

import pytest
from llmcore.state import Cooldown, RedisStore
from redis_server import RedisServer


# -- Redis ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.mark.redis
def test_redis_store_shares_cooldowns_with_ttl(redis_url: str) -> None:
    import redis

    prefix = f"test:{time.monotonic_ns()}:"
    host_a = RedisStore(redis_url, prefix=prefix, recheck=0.0)
    host_b = RedisStore(redis_url, prefix=prefix, recheck=0.0)
    host_a.put(Cooldown("openai/gpt-4o", time.time() + 30, "rate limited"))
    host_a.put(Cooldown("openai/gpt-4o", time.time() + 5, "shorter"))  # kept: the longer one
    host_a.put(Cooldown("vllm", time.time() + 0.3, "3 failures in a row"))
    assert "vllm" in host_a.active()  # at once in the writer's own snapshot
    assert host_a.sync() and host_b.sync()  # writes and reads happen in the background
    seen = host_b.active()
    assert seen["openai/gpt-4o"].reason == "rate limited"
    assert seen["vllm"].reason == "3 failures in a row"
    raw = redis.Redis.from_url(redis_url)
    ttl = raw.pttl(prefix + "openai/gpt-4o")
    assert 25_000 < ttl <= 30_000  # Redis itself forgets the cooldown when it ends
    time.sleep(0.4)
    assert host_b.sync()
    assert "vllm" not in host_b.active() and raw.get(prefix + "vllm") is None
    host_b.clear("openai/gpt-4o")
    assert host_b.sync() and host_a.sync()
    assert dict(host_a.active()) == {}
    host_a.close()
    host_b.close()
    raw.close()


def _two_fakes_config(a_url: str, b_url: str, state: str) -> str:
    return textwrap.dedent(f"""
        providers:
          a: {{plugin: openai, base_url: '{a_url}', api_key: k-test-1234, models: [m1]}}
          b: {{plugin: openai, base_url: '{b_url}', api_key: k-test-1234, models: [m1]}}
        agents: {{}}
        metrics: {{sinks: []}}
        routing: {{state: '{state}', cooldown: {{rate_limit_seconds: 600}}}}
    """)


@pytest.mark.redis
def test_two_hosts_share_a_cooldown_through_redis(redis_url: str) -> None:
    from llmcore.client import Client
    from llmcore.config import parse_config
    from llmcore.testing.fakes.base import Reply
    from llmcore.testing.fakes.openai import OpenAIFake

    with (
        OpenAIFake(default=Reply(status=429, headers={"Retry-After": "30"})) as a,
        OpenAIFake() as b,
    ):
        text = _two_fakes_config(a.base_url, b.base_url, redis_url)
        host1, host2 = Client(parse_config(text)), Client(parse_config(text))
        host2.router.store.clear()
        assert host2.router.store.sync()
        assert host1.chat("hi").provider == "b" and len(a.requests) == 1
        # Redis is reached in the background: within `recheck` (0.25 s) the other host knows.
        assert host1.router.store.sync() and host2.router.store.sync()
        resp = host2.chat("hi")  # another "host": it learns of a's cooldown from Redis
        assert resp.provider == "b" and resp.attempts[0].skipped and len(a.requests) == 1
        host1.router.clear_cooldowns()
        host1.close()
        host2.close()
