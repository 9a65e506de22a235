"""Budgets shared across hosts through a real redis-server (started by the test setup,
``scripts/setup-redis.sh``). Everything else about budgets: core/tests/test_budgets.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from core_support import budget_config as config
from llmcore import Client
from llmcore.budgets import BudgetExceeded
from llmcore.config import parse_config
from llmcore.testing.fakes import OpenAIFake, Reply


@pytest.mark.redis
def test_spending_is_shared_across_hosts_through_redis(tmp_path: Path) -> None:
    from redis_server import RedisServer

    (tmp_path / "redis").mkdir()
    priced = "cost: {input_per_million: 100000, output_per_million: 100000}\n    "
    with RedisServer(tmp_path / "redis") as server, OpenAIFake() as a, OpenAIFake() as b:

        def host(name: str) -> str:  # each "host" has its own metrics db, one Redis
            return config(
                a,
                b,
                tmp_path / f"{name}.db",
                budget=priced + "budget: {daily_usd: 1.0}",
                glob="budget: {monthly_usd: 3.0}",
            ).replace("state: memory", f"state: '{server.url}'")

        with Client(parse_config(host("one"))) as c:
            a.push(Reply(text="spent", usage=(10, 5)))  # 15 tokens x $0.1 = $1.50
            first = c.chat("hi")
        assert first.provider == "pricey" and first.cost_usd == pytest.approx(1.5)
        with Client(parse_config(host("two"))) as c:
            b.push(Reply(text="from cheap"))
            second = c.chat("hi")
        assert second.provider == "cheap" and second.attempts[0].error_type == "OverBudget"
        assert len(a.requests) == 1
        # the global budget counts every provider, on every host
        with Client(parse_config(host("three"))) as c:
            b.push(Reply(text="more", usage=(10, 6)))  # cheap is unpriced: free
            c.chat("again")
        import redis

        r = redis.Redis.from_url(server.url)
        r.incrbyfloat(next(k for k in r.keys("llmcore:spend:\\*:monthly:*")), 2.0)
        with Client(parse_config(host("four"))) as c, pytest.raises(BudgetExceeded) as info:
            c.chat("hi")
        assert info.value.spent == pytest.approx(3.5)
