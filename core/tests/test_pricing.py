"""llmcore.pricing: the one place prices become dollars, for the router, the registry and
the metrics sinks alike."""

from __future__ import annotations

from pathlib import Path

import pytest
from llmcore import Client
from llmcore.config import parse_config
from llmcore.pricing import Pricing, cost_usd, price_event
from llmcore.registry import Registry
from llmcore.router import Candidate
from llmcore.types import Usage


def test_cost_usd_charges_cached_input_at_its_own_rate() -> None:
    # 0.8M fresh input at $2.5, 0.2M cached at $1.25, 0.1M output at $10
    assert cost_usd((2.5, 10.0, 1.25), 1_000_000, 100_000, 200_000) == 2.0 + 0.25 + 1.0
    # no cached rate: every input token at the input rate
    assert cost_usd((2.5, 10.0, None), 1_000_000, 100_000, 200_000) == 2.5 + 1.0
    # more cached tokens than input tokens (a server's rounding) never pays negative input
    assert cost_usd((2.5, 10.0, 1.25), 1000, 0, 5000) == 1000 * 1.25 / 1e6
    assert cost_usd((0.0, 0.0, None), 10**9, 10**9) == 0.0


def _client(tmp_path: Path, extra: str = "") -> Client:
    # Port 9 (discard) is never called: pricing needs the provider, not its server.
    config = parse_config(
        "providers:\n"
        f"  p: {{plugin: openai, base_url: 'http://127.0.0.1:9/v1', models: [gpt-4o]{extra}}}\n"
        "agents: {}\nmetrics: {sinks: []}\n"
    )
    return Client(config)


@pytest.mark.parametrize(
    "usage",
    [
        Usage(input_tokens=1000, output_tokens=200),
        Usage(input_tokens=1000, output_tokens=200, cached_tokens=400),
        Usage(input_tokens=0, output_tokens=7),
    ],
    ids=["plain", "cached", "output-only"],
)
def test_router_registry_and_sinks_price_a_call_the_same(tmp_path: Path, usage: Usage) -> None:
    client = _client(tmp_path)
    try:
        pricing = client.router.pricing
        assert isinstance(pricing, Pricing)
        cand = Candidate("p", "gpt-4o", provider=client.runtime.providers["p"])
        registry = client.runtime.registry
        routed = pricing.cost(cand, "gpt-4o", usage)
        event = {
            "kind": "request",
            "outcome": "ok",
            "model": "gpt-4o",
            "plugin": "openai",
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cached_tokens": usage.cached_tokens,
        }
        assert routed is not None and routed > 0
        assert registry.cost("gpt-4o", "openai", usage) == routed
        assert price_event(registry, event) == routed
        # gpt-4o in the bundled registry: $2.5 in, $10 out, $1.25 cached input
        cached = min(usage.cached_tokens or 0, usage.input_tokens or 0)
        assert routed == pytest.approx(
            ((usage.input_tokens or 0) - cached) * 2.5e-6
            + cached * 1.25e-6
            + (usage.output_tokens or 0) * 1e-5
        )
    finally:
        client.close()


def test_a_providers_cost_section_wins_over_the_registry(tmp_path: Path) -> None:
    client = _client(tmp_path, ", cost: {input_per_million: 2.0, output_per_million: 10.0}")
    try:
        cand = Candidate("p", "gpt-4o", provider=client.runtime.providers["p"])
        usage = Usage(input_tokens=1000, output_tokens=200, cached_tokens=400)
        # the section has no cached rate: cached input is charged as input, as before
        expected = (1000 * 2.0 + 200 * 10.0) / 1e6
        assert client.router.pricing.cost(cand, "gpt-4o", usage) == expected
        assert (
            client.runtime.registry.cost("gpt-4o", "openai", usage, prices=(2.0, 10.0)) == expected
        )
    finally:
        client.close()


def test_events_that_are_not_a_finished_priced_call_get_no_price(tmp_path: Path) -> None:
    registry = Registry(cache_path=tmp_path / "sync.json")
    ok = {
        "kind": "request",
        "outcome": "ok",
        "model": "gpt-4o",
        "plugin": "openai",
        "input_tokens": 1000,
        "output_tokens": 0,
    }
    assert price_event(registry, ok) == pytest.approx(1000 * 2.5e-6)
    assert price_event(registry, {**ok, "kind": "attempt"}) is None
    assert price_event(registry, {**ok, "outcome": "RateLimitError"}) is None
    assert price_event(registry, {**ok, "input_tokens": None, "output_tokens": None}) is None
    assert price_event(registry, {**ok, "model": "mystery"}) is None  # unknown price
