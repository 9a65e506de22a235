"""The OpenAI-compatible client (``llmcore.openai_compat``) beyond the shared contract:
what it sends, how it reads streams, completions, embeddings and models, and its errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from email.utils import formatdate
from typing import Any

import pytest
from llmcore.config import ProviderConfig, Timeouts
from llmcore.errors import (
    BadRequestError,
    ModelNotFoundError,
    ProviderConnectionError,
    ProviderTimeoutError,
    RateLimitError,
    ResponseError,
)
from llmcore.openai_compat import OpenAIProvider
from llmcore.testing.contract import dead_url
from llmcore.testing.fakes import OpenAIFake, Reply
from llmcore.types import ChatRequest, Message


@pytest.fixture
def fake() -> Iterator[OpenAIFake]:
    with OpenAIFake() as server:
        yield server


def make(url: str, **kw: Any) -> OpenAIProvider:
    fields: dict[str, Any] = {
        "name": "oa",
        "plugin": "openai",
        "base_url": url,
        "models": ["fake-model"],
    }
    fields.update(kw)
    return OpenAIProvider(ProviderConfig(**fields))


@pytest.fixture
def provider(fake: OpenAIFake) -> Iterator[OpenAIProvider]:
    p = make(fake.base_url)
    yield p
    p.close()


def req(prompt: str = "hi", **kw: Any) -> ChatRequest:
    return ChatRequest(messages=[Message("user", prompt)], **kw)


# -- what is sent ---------------------------------------------------------------------------
def test_chat_sends_options_and_extra_untouched_but_not_prompt(
    fake: OpenAIFake, provider: OpenAIProvider
) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    provider.chat(
        req(
            temperature=0.1,
            max_tokens=5,
            top_p=0.9,
            stop=["x"],
            seed=3,
            response_format={"type": "json_object"},
            tools=tools,
            tool_choice="auto",
            extra={
                "top_k": 20,
                "guided_json": {"type": "object"},
                "prompt": "belongs to /completions",
            },
        )
    )
    body = fake.requests[-1].json
    assert fake.requests[-1].path == "/v1/chat/completions"
    assert body["model"] == "fake-model"
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    for key, value in (
        ("temperature", 0.1),
        ("max_tokens", 5),
        ("top_p", 0.9),
        ("stop", ["x"]),
        ("seed", 3),
        ("response_format", {"type": "json_object"}),
        ("tools", tools),
        ("tool_choice", "auto"),
        ("top_k", 20),
        ("guided_json", {"type": "object"}),
    ):
        assert body[key] == value, key
    assert "prompt" not in body
    assert "stream" not in body


def test_unset_options_are_not_sent(fake: OpenAIFake, provider: OpenAIProvider) -> None:
    provider.chat(req())
    assert set(fake.requests[-1].json) == {"model", "messages"}


def test_stream_asks_for_usage_unless_turned_off(fake: OpenAIFake) -> None:
    with_usage, without = make(fake.base_url), make(fake.base_url, options={"stream_usage": False})
    list(with_usage.stream(req()))
    assert fake.requests[-1].json["stream_options"] == {"include_usage": True}
    list(without.stream(req()))
    assert "stream_options" not in fake.requests[-1].json
    assert fake.requests[-1].json["stream"] is True


def test_extra_body_and_headers_from_options(fake: OpenAIFake) -> None:
    p = make(
        fake.base_url,
        options={"extra_body": {"min_p": 0.05}, "headers": {"OpenAI-Organization": "org-1"}},
    )
    p.chat(req())
    assert fake.requests[-1].json["min_p"] == 0.05
    assert fake.requests[-1].headers.get("OpenAI-Organization") == "org-1"


def test_key_from_default_env_is_sent_as_bearer(
    fake: OpenAIFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "env-key-0123456789")
    p = make(fake.base_url)
    p.chat(req())
    assert fake.requests[-1].headers.get("Authorization") == "Bearer env-key-0123456789"
    assert "env-key-0123456789" not in repr(p)


def test_images_are_sent_as_content_parts(fake: OpenAIFake, provider: OpenAIProvider) -> None:
    provider.chat(ChatRequest(messages=[Message("user", "what is this?", images=["iVBORw0KGgo="])]))
    content = fake.requests[-1].json["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "what is this?"}
    assert content[1]["image_url"]["url"] == "data:image/png;base64,iVBORw0KGgo="


def test_one_pooled_client_per_provider(provider: OpenAIProvider) -> None:
    provider.chat(req())
    first = provider.transport.client
    provider.chat(req())
    assert provider.transport.client is first


# -- answers ------------------------------------------------------------------------------
def test_tool_calls_and_reasoning_in_plain_answers(
    fake: OpenAIFake, provider: OpenAIProvider
) -> None:
    fake.push(
        Reply(
            text="",
            thinking="let me think",
            tool_calls=[{"name": "write_file", "arguments": {"path": "a"}, "id": "c1"}],
        )
    )
    resp = provider.chat(req())
    assert resp.finish_reason == "tool_calls"
    assert resp.thinking == "let me think"
    assert resp.tool_calls is not None
    call = resp.tool_calls[0]
    assert call["id"] == "c1" and call["function"]["name"] == "write_file"
    assert json.loads(call["function"]["arguments"]) == {"path": "a"}


def test_stream_assembles_tool_calls_and_keeps_thinking_apart(
    fake: OpenAIFake, provider: OpenAIProvider
) -> None:
    fake.push(
        Reply(
            text="ok", thinking="hmm", tool_calls=[{"name": "f", "arguments": {"x": 1}, "id": "c9"}]
        )
    )
    chunks = list(provider.stream(req()))
    assert "".join(c.content for c in chunks) == "ok"
    assert "".join(c.thinking for c in chunks) == "hmm"
    last = chunks[-1]
    assert last.finish_reason == "tool_calls"
    assert last.tool_calls == [
        {"id": "c9", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
    ]


def test_stream_without_usage_block_counts_it(fake: OpenAIFake) -> None:
    p = make(fake.base_url, options={"stream_usage": False})
    fake.push(Reply(text="a b c d"))
    chunks = list(p.stream(req("one two three four five six seven eight")))
    usage = chunks[-1].usage
    assert usage is not None
    assert usage.output_tokens == 4  # one per content event
    assert usage.input_tokens >= 1


def test_stream_that_ends_without_finish_or_done_is_an_error(
    fake: OpenAIFake, provider: OpenAIProvider
) -> None:
    fake.push(Reply(text="half an answer", extra={"no_finish": True, "no_done": True}))
    got: list[str] = []
    with pytest.raises(ResponseError, match="ended before the answer was complete") as info:
        for c in provider.stream(req()):
            got.append(c.content)
    assert "".join(got) == "half an answer"
    assert info.value.retryable


def test_stream_with_finish_but_no_done_is_accepted(
    fake: OpenAIFake, provider: OpenAIProvider
) -> None:
    fake.push(Reply(text="complete", extra={"no_done": True}))
    chunks = list(provider.stream(req()))
    assert chunks[-1].finish_reason == "stop"


def test_error_event_inside_a_stream_is_raised(fake: OpenAIFake, provider: OpenAIProvider) -> None:
    body = (
        b'data: {"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}\n\n'
        b'data: {"error":{"message":"out of memory","code":500}}\n\n'
    )
    fake.push(Reply(body=body))
    with pytest.raises(ResponseError, match="out of memory"):
        list(provider.stream(req()))


def test_generate_uses_completions(fake: OpenAIFake, provider: OpenAIProvider) -> None:
    fake.push(Reply(text="completed text", usage=(4, 2)))
    r = req(max_tokens=3, extra={"prompt": "Once upon", "echo": False})
    resp = provider.generate(r)
    sent = fake.requests[-1]
    assert sent.path == "/v1/completions"
    assert sent.json["prompt"] == "Once upon"
    assert sent.json["max_tokens"] == 3 and sent.json["echo"] is False
    assert "messages" not in sent.json
    assert resp.content == "completed text"
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == (4, 2)
    assert resp.finish_reason == "stop"


def test_completion_choices_are_read_in_index_order(provider: OpenAIProvider) -> None:
    data = {
        "model": "m",
        "usage": {"prompt_tokens": 2, "completion_tokens": 2},
        "choices": [
            {"index": 1, "text": "second", "finish_reason": "stop"},
            {"index": 0, "text": "first", "finish_reason": "length"},
        ],
    }
    out = provider.parse_completion(data, 0.0)
    assert [r.content for r in out] == ["first", "second"]
    assert out[0].finish_reason == "length"
    assert out[0].usage.output_tokens == 2 and out[1].usage.output_tokens == 0


def test_embed_sync_and_async(fake: OpenAIFake, provider: OpenAIProvider) -> None:
    resp = provider.embed(["alpha", "beta"], model="emb")
    assert fake.requests[-1].json == {
        "model": "emb",
        "input": ["alpha", "beta"],
        "encoding_format": "float",
    }
    assert len(resp.vectors) == 2 and len(resp.vectors[0]) == fake.embedding_dim
    assert resp.vectors[0] != resp.vectors[1]

    async def run() -> Any:
        try:
            return await provider.aembed(["alpha", "beta"], model="emb")
        finally:
            await provider.aclose()

    assert asyncio.run(run()).vectors == resp.vectors


def test_models_reads_context_length_when_given(provider: OpenAIProvider) -> None:
    info = provider.model_info({"id": "m", "object": "model", "max_model_len": 8192})
    assert info.context_length == 8192
    assert provider.model_info({"id": "n", "context_length": 2048}).context_length == 2048
    assert provider.model_info({"id": "o"}).context_length is None


def test_async_generate_and_models(fake: OpenAIFake, provider: OpenAIProvider) -> None:
    async def run() -> Any:
        try:
            g = await provider.agenerate(req(extra={"prompt": "p"}))
            return g, await provider.amodels()
        finally:
            await provider.aclose()

    g, models = asyncio.run(run())
    assert g.content == fake.default.text
    assert [m.name for m in models] == ["fake-model"]


def test_provider_works_from_several_event_loops(
    fake: OpenAIFake, provider: OpenAIProvider
) -> None:
    async def twice() -> tuple[Any, Any]:
        await provider.achat(req())
        s1 = provider.atransport.pool()
        await provider.achat(req())
        return s1, provider.atransport.pool()

    s1, s2 = asyncio.run(twice())
    assert s1 is s2, "one connection pool per loop, reused"
    s3, _ = asyncio.run(twice())  # a new loop: a new pool, the old one let go
    assert s3 is not s1
    assert len(provider.atransport._pools) == 1
    provider.close()


def test_health(fake: OpenAIFake, provider: OpenAIProvider) -> None:
    ok = provider.health()
    assert ok.ok and ok.detail == "1 model(s)"
    down = make(dead_url(fake.base_url)).health()
    assert not down.ok and "not reachable" in down.detail and down.hint


# -- errors -----------------------------------------------------------------------------------
def test_404_names_the_model_and_how_to_list_models(
    fake: OpenAIFake, provider: OpenAIProvider
) -> None:
    fake.push(Reply(status=404, error="The model `nope` does not exist"))
    with pytest.raises(ModelNotFoundError) as info:
        provider.chat(req(model="nope"))
    assert "'nope'" in info.value.message and "does not exist" in info.value.message
    assert info.value.hint and "llmcore models --provider oa" in info.value.hint


def test_422_fastapi_detail_is_a_bad_request(fake: OpenAIFake, provider: OpenAIProvider) -> None:
    fake.push(
        Reply(
            status=422,
            body=json.dumps(
                {"detail": [{"loc": ["body", "temperature"], "msg": "must be <= 2"}]}
            ).encode(),
        )
    )
    with pytest.raises(BadRequestError, match="must be <= 2") as info:
        provider.chat(req())
    assert info.value.status == 422 and not info.value.retryable


def test_retry_after_ms_wins_and_http_dates_work(
    fake: OpenAIFake, provider: OpenAIProvider
) -> None:
    fake.push(Reply(status=429, headers={"retry-after-ms": "250", "Retry-After": "9"}))
    with pytest.raises(RateLimitError) as info:
        provider.chat(req())
    assert info.value.retry_after == 0.25
    import time

    fake.push(Reply(status=429, headers={"Retry-After": formatdate(time.time() + 30, usegmt=True)}))
    with pytest.raises(RateLimitError) as info:
        provider.chat(req())
    assert info.value.retry_after is not None and 25 <= info.value.retry_after <= 31


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (504, True), (501, False)])
def test_server_errors(
    fake: OpenAIFake, provider: OpenAIProvider, status: int, retryable: bool
) -> None:
    fake.push(Reply(status=status, error="boom"))
    with pytest.raises(ResponseError) as info:
        provider.chat(req())
    assert info.value.retryable is retryable and "boom" in info.value.message


def test_answer_without_choices_is_a_response_error(
    fake: OpenAIFake, provider: OpenAIProvider
) -> None:
    fake.push(Reply(body=b'{"object": "chat.completion"}'))
    with pytest.raises(ResponseError, match="no choices"):
        provider.chat(req())


def test_async_errors_match_sync(fake: OpenAIFake) -> None:
    dead = make(dead_url(fake.base_url))
    slow = make(fake.base_url, timeout=Timeouts(connect=2, read=0.2, write=2, pool=2))
    fake.push(
        Reply(delay=1.0),
        Reply(status=429, headers={"Retry-After": "4"}),
        Reply(body=b"not json at all"),
    )

    async def run() -> list[BaseException]:
        errors: list[BaseException] = []
        for p in (dead, slow, slow, slow):
            try:
                await p.achat(req())
            except Exception as exc:
                errors.append(exc)
        await dead.aclose()
        await slow.aclose()
        return errors

    refused, timeout, limited, garbage = asyncio.run(run())
    assert isinstance(refused, ProviderConnectionError) and "not reachable" in refused.message
    assert isinstance(timeout, ProviderTimeoutError)
    assert isinstance(limited, RateLimitError) and limited.retry_after == 4.0
    assert isinstance(garbage, ResponseError) and "not json at all" in garbage.message


def test_per_request_timeout(fake: OpenAIFake, provider: OpenAIProvider) -> None:
    fake.push(Reply(delay=1.0))
    with pytest.raises(ProviderTimeoutError):
        provider.chat(req(timeout=0.2))


def test_async_per_request_timeout(fake: OpenAIFake, provider: OpenAIProvider) -> None:
    fake.push(Reply(delay=1.0), Reply(text="in time"))

    async def run() -> tuple[BaseException | None, str]:
        err = None
        try:
            await provider.achat(req(timeout=0.2))
        except ProviderTimeoutError as exc:
            err = exc
        ok = await provider.achat(req(timeout=5))
        await provider.aclose()
        return err, ok.content

    err, content = asyncio.run(run())
    assert isinstance(err, ProviderTimeoutError)
    assert content == "in time"


def test_server_rejecting_stream_options_is_asked_again_without(
    fake: OpenAIFake, provider: OpenAIProvider
) -> None:
    fake.push(
        Reply(status=400, error="Unrecognized request argument supplied: stream_options"),
        Reply(text="fine without it"),
    )
    chunks = list(provider.stream(req()))
    assert "".join(c.content for c in chunks) == "fine without it"
    assert chunks[-1].usage is not None and chunks[-1].usage.output_tokens == 3
    first, second = (r.json for r in fake.requests[-2:])
    assert "stream_options" in first and "stream_options" not in second
    list(provider.stream(req()))
    assert "stream_options" not in fake.requests[-1].json  # remembered


def test_other_bad_requests_on_streams_are_raised(
    fake: OpenAIFake, provider: OpenAIProvider
) -> None:
    fake.push(Reply(status=400, error="temperature must be <= 2"))
    with pytest.raises(BadRequestError, match="temperature"):
        list(provider.stream(req()))
    assert len([r for r in fake.requests if r.path == "/v1/chat/completions"]) == 1


def test_llama_cpp_error_line_inside_a_stream_is_raised(
    fake: OpenAIFake, provider: OpenAIProvider
) -> None:
    fake.push(Reply(body=b'error: {"code":500,"message":"context overflow","type":"server"}\n\n'))
    with pytest.raises(ResponseError, match="context overflow"):
        list(provider.stream(req()))


def test_a_slow_tool_call_stream_is_not_cut_at_first_token(fake: OpenAIFake) -> None:
    # Three tool calls, 0.3 s apart: no content chunk comes until the end, but events do;
    # first_token (0.5 s) bounds the wait for the answer to start, not for its first text.
    calls = [{"name": f"tool_{i}", "arguments": {"n": i}, "id": f"c{i}"} for i in range(3)]
    fake.push(Reply(text="", tool_calls=calls, chunk_delay=0.3))
    p = make(
        fake.base_url,
        timeout=Timeouts(connect=2, read=2, write=2, pool=2, first_token=0.5, total=20),
    )
    chunks = list(p.stream(req()))
    assert chunks[-1].tool_calls is not None and len(chunks[-1].tool_calls) == 3
    p.close()


def test_a_stream_of_keepalives_only_is_cut_at_first_token() -> None:
    # ": ping" comments keep the socket busy (so the read timeout never fires) but are no
    # answer: first_token ends the wait.
    from llmcore.testing.hostile import HostileServer

    with HostileServer() as hostile:
        hostile.fault = "keepalive_only"
        p = make(
            hostile.base_url,
            timeout=Timeouts(connect=2, read=2, write=2, pool=2, first_token=0.5, total=20),
        )
        with pytest.raises(ProviderTimeoutError, match="first_token"):
            list(p.stream(req()))
        p.close()
