"""What a routed request cost: ``ChatResponse.cost_usd`` and the ``request`` event's
``cost_usd``, from the provider's ``cost:`` config, else 0 on a local provider, else the
model registry's prices. Also: the attempt event of a 429 says until when it cools."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from llmcore.testing.fakes.base import Reply
from llmcore.testing.fakes.openai import OpenAIFake
from router_kit import Api, Events, chain

MODES = [pytest.param(False, id="sync"), pytest.param(True, id="async")]
TOKENS = (1000, 200)
# gpt-4o-mini in the bundled registry: $0.15 in / $0.60 out per million tokens
REGISTRY_COST = (1000 * 0.15 + 200 * 0.60) / 1e6
# the `cost:` section used below: $2 in / $10 out per million tokens
CONFIG_COST = (1000 * 2.0 + 200 * 10.0) / 1e6
COST_SECTION = ", cost: {input_per_million: 2.0, output_per_million: 10.0}"


@pytest.fixture
def fake() -> Iterator[OpenAIFake]:
    f = OpenAIFake(default=Reply(text="priced answer", usage=TOKENS))
    f.start()
    yield f
    f.stop()


def _api(make_client: Any, text: str, is_async: bool, *plugins: object) -> tuple[Api, Events]:
    events = Events()
    return Api(make_client(text, events, *plugins, async_=is_async), is_async), events


def _request_costs(events: Events) -> list[float | None]:
    return [e.cost_usd for e in events.kinds("request")]


@pytest.mark.parametrize("is_async", MODES)
async def test_cost_section_prices_a_model_the_registry_does_not_know(
    is_async: bool, fake: OpenAIFake, make_client: Any
) -> None:
    api, events = _api(
        make_client,
        chain([("p", fake.base_url)], models=["house-model-x"], extra=COST_SECTION),
        is_async,
    )
    resp = await api.chat()
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == TOKENS
    assert resp.cost_usd == pytest.approx(CONFIG_COST)
    assert _request_costs(events) == [pytest.approx(CONFIG_COST)]
    await api.close()


@pytest.mark.parametrize("is_async", MODES)
async def test_cost_section_wins_over_the_registry(
    is_async: bool, fake: OpenAIFake, make_client: Any
) -> None:
    api, events = _api(
        make_client,
        chain([("p", fake.base_url)], models=["gpt-4o-mini"], extra=COST_SECTION),
        is_async,
    )
    resp = await api.chat()
    assert resp.cost_usd == pytest.approx(CONFIG_COST)
    assert resp.cost_usd != pytest.approx(REGISTRY_COST)
    assert _request_costs(events) == [pytest.approx(CONFIG_COST)]
    await api.close()


@pytest.mark.parametrize("is_async", MODES)
async def test_registry_prices_a_known_model_on_a_hosted_provider(
    is_async: bool, fake: OpenAIFake, make_client: Any
) -> None:
    api, events = _api(make_client, chain([("p", fake.base_url)], models=["gpt-4o-mini"]), is_async)
    resp = await api.chat()
    assert resp.cost_usd == pytest.approx(REGISTRY_COST)
    # the server's dated name resolves to the same registry entry
    fake.push(Reply(text="dated", usage=TOKENS, model="gpt-4o-mini-2024-07-18"))
    resp = await api.chat()
    assert resp.model == "gpt-4o-mini-2024-07-18"
    assert resp.cost_usd == pytest.approx(REGISTRY_COST)
    assert _request_costs(events) == [pytest.approx(REGISTRY_COST)] * 2
    await api.close()


@pytest.mark.parametrize("is_async", MODES)
async def test_a_streamed_request_event_carries_the_cost(
    is_async: bool, fake: OpenAIFake, make_client: Any
) -> None:
    api, events = _api(make_client, chain([("p", fake.base_url)], models=["gpt-4o-mini"]), is_async)
    chunks, _, err = await api.stream()
    assert err is None and "".join(c.content for c in chunks) == "priced answer"
    (req,) = events.kinds("request")
    assert req.operation == "stream" and req.cost_usd == pytest.approx(REGISTRY_COST)
    await api.close()


@pytest.mark.parametrize("is_async", MODES)
async def test_unknown_model_on_a_hosted_provider_is_unpriced_not_free(
    is_async: bool, fake: OpenAIFake, make_client: Any
) -> None:
    api, events = _api(
        make_client, chain([("p", fake.base_url)], models=["house-model-x"]), is_async
    )
    resp = await api.chat()
    assert resp.cost_usd is None  # unknown, so `llmcore usage` counts it as unpriced
    assert _request_costs(events) == [None]
    await api.close()


@pytest.mark.parametrize("is_async", MODES)
async def test_a_local_provider_costs_nothing(
    is_async: bool, fake: OpenAIFake, make_client: Any
) -> None:
    # vLLM (its plugin, on the OpenAI fake) is a local server: even a model name the
    # registry prices is free there, and so is one it does not know.
    import llmcore_vllm  # type: ignore[import-untyped]

    text = f"""
providers:
  v: {{plugin: vllm, base_url: '{fake.base_url}', models: [gpt-4o-mini, house-model-x]}}
agents: {{}}
metrics: {{sinks: []}}
routing: {{state: memory}}
"""
    api, events = _api(make_client, text, is_async, llmcore_vllm)
    for model in ("gpt-4o-mini", "house-model-x"):
        resp = await api.chat(model=model)
        assert resp.provider == "v" and resp.model == model
        assert resp.cost_usd == 0.0
    assert _request_costs(events) == [0.0, 0.0]
    await api.close()


def test_a_replaced_provider_is_priced_by_its_own_config(
    fake: OpenAIFake, make_client: Any
) -> None:
    """The price source is cached per (provider, model): a provider added under the same
    name (``Runtime.add_provider``) must not inherit the old one's price."""
    client = make_client(
        chain([("p", fake.base_url)], models=["house-model-x"], extra=COST_SECTION)
    )
    assert client.chat("hi").cost_usd == pytest.approx(CONFIG_COST)
    old = client.runtime.providers["p"]
    client.runtime.add_provider(type(old)(attrs.evolve(old.config, cost=None)))
    assert client.chat("hi").cost_usd is None


@pytest.mark.parametrize("is_async", MODES)
async def test_a_429_attempt_event_says_until_when_it_cools(
    is_async: bool, fake: OpenAIFake, make_client: Any
) -> None:
    b = OpenAIFake(default=Reply(text="from b", usage=TOKENS))
    b.start()
    try:
        fake.push(Reply(status=429, headers={"Retry-After": "120"}))
        api, events = _api(
            make_client,
            chain([("a", fake.base_url), ("b", b.base_url)], models=["gpt-4o-mini"]),
            is_async,
        )
        resp = await api.chat()
        assert resp.provider == "b"
        failed = [e for e in events.kinds("attempt") if e.provider == "a"]
        (cooldown,) = events.kinds("cooldown")
        assert [e.outcome for e in failed] == ["RateLimitError"]
        assert cooldown.cooldown_until is not None
        assert failed[0].cooldown_until == cooldown.cooldown_until
        assert resp.attempts[0].cooldown_until == cooldown.cooldown_until
        assert resp.cost_usd == pytest.approx(REGISTRY_COST)  # priced where it answered
        await api.close()
    finally:
        b.stop()


def test_cached_input_tokens_are_charged_at_the_cached_rate(
    fake: OpenAIFake, make_client: Any
) -> None:
    """The cached fast path must not lose the registry's cached-input price."""
    from llmcore.registry import get_registry
    from llmcore.router import Candidate
    from llmcore.types import Usage

    client = make_client(chain([("p", fake.base_url)], models=["gpt-4o-mini"]))
    cand = Candidate("p", "gpt-4o-mini", provider=client.runtime.providers["p"])
    pricing = client.router.pricing
    # gpt-4o-mini: $0.075 per million cached input tokens
    cached = Usage(input_tokens=1000, output_tokens=200, cached_tokens=400)
    expected = (600 * 0.15 + 400 * 0.075 + 200 * 0.60) / 1e6
    for _ in range(2):  # the first looks the price up, the second uses the cache
        assert pricing.cost(cand, "gpt-4o-mini", cached) == pytest.approx(expected)
        assert pricing.cost(cand, "gpt-4o-mini", Usage(1000, 200)) == pytest.approx(REGISTRY_COST)
    assert get_registry(client.runtime.config).cost(
        "gpt-4o-mini", "openai", cached
    ) == pytest.approx(expected)
