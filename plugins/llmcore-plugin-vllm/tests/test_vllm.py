"""vLLM's extras: health, model length, metrics, tokenize, pass-through, replicas, batches."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import llmcore
import pytest
from llmcore.config import ProviderConfig, parse_config
from llmcore.runtime import Runtime
from llmcore.testing.contract import dead_url
from llmcore.testing.fakes import Reply, VLLMFake
from llmcore_vllm import VLLMProvider, parse_metrics


@pytest.fixture
def fake() -> Iterator[VLLMFake]:
    with VLLMFake() as server:
        yield server


@pytest.fixture
def fake2() -> Iterator[VLLMFake]:
    with VLLMFake() as server:
        yield server


def make(**kw: Any) -> VLLMProvider:
    fields: dict[str, Any] = {"name": "vllm", "plugin": "vllm", "models": ["fake-model"]}
    fields.update(kw)
    return VLLMProvider(ProviderConfig(**fields))


def req(text: str = "hi", **kw: Any) -> llmcore.ChatRequest:
    return llmcore.ChatRequest(messages=[llmcore.Message("user", text)], **kw)


def chats(f: VLLMFake) -> int:
    return sum(1 for r in f.requests if r.path == "/v1/chat/completions")


# -- single server --------------------------------------------------------------------------
def test_defaults() -> None:
    p = make()
    assert p.base_url == "http://localhost:8000/v1"
    assert p.api_key is None
    assert "vllm serve" in p.start_hint


def test_models_report_max_model_len(fake: VLLMFake) -> None:
    fake.max_model_len = 32768
    [info] = make(base_url=fake.base_url).models()
    assert info.name == "fake-model" and info.context_length == 32768


def test_health_and_version(fake: VLLMFake) -> None:
    p = make(base_url=fake.base_url)
    h = p.health()
    assert h.ok and h.version == "0.6.3"
    fake.healthy = False
    h = p.health()
    assert not h.ok and "503" in h.detail and h.hint
    assert not make(base_url=dead_url(fake.base_url)).health().ok


def test_load_from_metrics(fake: VLLMFake) -> None:
    fake.running, fake.waiting, fake.kv_cache_usage = 3, 4, 0.5
    p = make(base_url=fake.base_url)
    assert p.load() == 7.0
    r = p.replicas.all[0]
    assert (r.running, r.waiting, r.kv_cache_usage) == (3.0, 4.0, 0.5)


def test_parse_metrics_old_names_and_several_models() -> None:
    text = (
        "\n".join(
            [
                "# TYPE vllm:num_requests_running gauge",
                'vllm:num_requests_running{model_name="a"} 2.0',
                'vllm:num_requests_running{model_name="b"} 1.0',
                "# TYPE vllm:gpu_cache_usage_perc gauge",
                'vllm:gpu_cache_usage_perc{model_name="a"} 0.25',
            ]
        )
        + "\n"
    )
    assert parse_metrics(text) == {"running": 3.0, "kv_cache_usage": 0.25}


def test_tokenize(fake: VLLMFake) -> None:
    tokens = make(base_url=fake.base_url).tokenize("three little words")
    assert len(tokens) == 3 and all(isinstance(t, int) for t in tokens)
    sent = fake.requests[-1]
    assert sent.path == "/tokenize" and sent.json == {
        "model": "fake-model",
        "prompt": "three little words",
    }


def test_vllm_sampling_and_structured_output_pass_through(fake: VLLMFake) -> None:
    p = make(base_url=fake.base_url, options={"extra_body": {"repetition_penalty": 1.1}})
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    p.chat(
        req(
            extra={
                "top_k": 20,
                "min_p": 0.05,
                "guided_json": schema,
                "structured_outputs": {"json": schema},
            }
        )
    )
    body = fake.requests[-1].json
    assert body["top_k"] == 20 and body["min_p"] == 0.05
    assert body["guided_json"] == schema and body["structured_outputs"] == {"json": schema}
    assert body["repetition_penalty"] == 1.1


def test_unknown_option_is_a_config_error() -> None:
    cfg = parse_config("providers:\n  v:\n    plugin: vllm\n    recheck_afterr: 3\n")
    with pytest.raises(llmcore.ConfigError, match="recheck_after"):
        Runtime(cfg).validate()


def test_client_through_config(fake: VLLMFake) -> None:
    cfg = parse_config(
        f"providers:\n  v:\n    plugin: vllm\n    base_url: {fake.base_url}\n"
        f"    models: [fake-model]\n    metrics_ttl: 0\n"
    )
    with llmcore.Client(cfg) as client:
        fake.push(Reply(text="via the router"))
        resp = client.chat("hello", top_k=5)
    assert resp.content == "via the router" and resp.provider == "v"
    assert fake.requests[-1].json["top_k"] == 5


# -- replicas -------------------------------------------------------------------------------
def test_sequential_calls_spread_over_replicas(fake: VLLMFake, fake2: VLLMFake) -> None:
    p = make(base_urls=[fake.base_url, fake2.base_url])
    for _ in range(6):
        p.chat(req())
    assert chats(fake) == 3 and chats(fake2) == 3


def test_least_busy_replica_by_metrics(fake: VLLMFake, fake2: VLLMFake) -> None:
    fake.running, fake.waiting = 5, 10
    p = make(base_urls=[fake.base_url, fake2.base_url], options={"metrics_ttl": 60})
    for _ in range(4):
        p.chat(req())
    assert chats(fake) == 0 and chats(fake2) == 4
    assert any(r.path == "/metrics" for r in fake.requests)


def test_in_flight_counts_steer_concurrent_calls(fake: VLLMFake, fake2: VLLMFake) -> None:
    fake.default = fake2.default = Reply(text="slow", delay=0.3)
    p = make(base_urls=[fake.base_url, fake2.base_url], options={"metrics_ttl": 0})

    async def run() -> None:
        try:
            await asyncio.gather(*(p.achat(req()) for _ in range(6)))
        finally:
            await p.aclose()

    asyncio.run(run())
    assert chats(fake) == 3 and chats(fake2) == 3


def test_unreachable_replica_is_skipped_and_calls_still_succeed(fake: VLLMFake) -> None:
    dead = dead_url(fake.base_url)
    p = make(base_urls=[dead, fake.base_url], options={"recheck_after": 60})
    for _ in range(4):
        assert p.chat(req()).content == fake.default.text
    assert chats(fake) == 4
    down = p.replicas.all[0]
    assert down.down and down.last_error and "not reachable" in down.last_error


def test_async_unreachable_replica_is_skipped(fake: VLLMFake) -> None:
    p = make(base_urls=[dead_url(fake.base_url), fake.base_url], options={"recheck_after": 60})

    async def run() -> list[str]:
        try:
            return [(await p.achat(req())).content for _ in range(3)]
        finally:
            await p.aclose()

    assert asyncio.run(run()) == [fake.default.text] * 3
    assert p.replicas.all[0].down


def test_replica_failing_health_is_skipped_until_it_recovers(
    fake: VLLMFake, fake2: VLLMFake
) -> None:
    p = make(
        base_urls=[fake.base_url, fake2.base_url], options={"recheck_after": 0.2, "metrics_ttl": 0}
    )
    fake.healthy = False
    health = p.health()
    assert health.ok and health.detail == "1/2 replica(s) healthy"
    for _ in range(3):
        p.chat(req())
    assert chats(fake) == 0 and chats(fake2) == 3
    fake.healthy = True
    time.sleep(0.3)
    for _ in range(4):
        p.chat(req())
    assert chats(fake) >= 1, "the recovered replica never got a request"
    assert not p.replicas.all[0].down


def test_all_replicas_down_raises_a_connection_error(fake: VLLMFake) -> None:
    p = make(base_urls=[dead_url(fake.base_url), dead_url(fake.base_url)])
    with pytest.raises(llmcore.ProviderConnectionError, match="not reachable"):
        p.chat(req())


# -- batches --------------------------------------------------------------------------------
def test_batch_generate_is_one_request(fake: VLLMFake) -> None:
    fake.push(Reply(extra={"texts": ["one", "two", "three"]}, usage=(6, 3)))
    out = make(base_url=fake.base_url).batch_generate(["a", "b", "c"], max_tokens=4, top_k=3)
    assert [r.content for r in out] == ["one", "two", "three"]
    posted = [r for r in fake.requests if r.path == "/v1/completions"]
    assert len(posted) == 1
    assert posted[0].json["prompt"] == ["a", "b", "c"]
    assert posted[0].json["max_tokens"] == 4 and posted[0].json["top_k"] == 3
    assert sum(r.usage.output_tokens for r in out) == 3


def test_batch_generate_async_and_bad_input(fake: VLLMFake) -> None:
    p = make(base_url=fake.base_url)
    fake.push(Reply(extra={"texts": ["x", "y"]}))

    async def run() -> list[llmcore.ChatResponse]:
        try:
            return await p.abatch_generate(["1", "2"])
        finally:
            await p.aclose()

    assert [r.content for r in asyncio.run(run())] == ["x", "y"]
    with pytest.raises(TypeError, match="list of prompt"):
        p.batch_generate("not a list")  # type: ignore[arg-type]


def test_chat_batch_keeps_order_and_the_concurrency_limit(fake: VLLMFake) -> None:
    fake.default = Reply(text="done", delay=0.25)
    p = make(base_url=fake.base_url)
    out = p.chat_batch([f"q{i}" for i in range(4)], concurrency=2)
    assert [r.content for r in out] == ["done"] * 4
    arrivals = sorted(r.time for r in fake.requests if r.path == "/v1/chat/completions")
    assert len(arrivals) == 4
    # Two at a time: the third starts only after one of the first two finished.
    assert arrivals[2] - arrivals[0] >= 0.2
    sent = sorted(r.json["messages"][0]["content"] for r in fake.requests)
    assert sent == ["q0", "q1", "q2", "q3"]


def test_achat_batch(fake: VLLMFake) -> None:
    p = make(base_url=fake.base_url)

    async def run() -> list[llmcore.ChatResponse]:
        try:
            return await p.achat_batch(
                ["a", [{"role": "user", "content": "b"}]], concurrency=2, temperature=0.3
            )
        finally:
            await p.aclose()

    out = asyncio.run(run())
    assert len(out) == 2
    assert all(r.json["temperature"] == 0.3 for r in fake.requests)


def test_streams_skip_an_unreachable_replica(fake: VLLMFake) -> None:
    p = make(base_urls=[dead_url(fake.base_url), fake.base_url], options={"recheck_after": 60})
    fake.push(Reply(text="streamed anyway"))
    chunks = list(p.stream(req()))
    assert "".join(c.content for c in chunks) == "streamed anyway"
    assert p.replicas.all[0].down

    async def run() -> str:
        try:
            return "".join([c.content async for c in p.astream(req())])
        finally:
            await p.aclose()

    p.replicas.all[0].down_until = 0  # due for a recheck: /health fails, so it stays down
    fake.push(Reply(text="async too"))
    assert asyncio.run(run()) == "async too"
    assert p.replicas.all[0].down
