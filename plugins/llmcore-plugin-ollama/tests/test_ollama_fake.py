"""The Ollama fake, checked against the official ``ollama`` client: every answer it gives
must parse into the client's typed models (a fake the client rejects is a bug)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import ollama
import pytest
from llmcore.testing.fakes import OllamaFake, Reply


@pytest.fixture
def client(ollama_fake: OllamaFake) -> Iterator[ollama.Client]:
    with ollama.Client(host=ollama_fake.url) as c:
        yield c


def test_chat_plain_parses_with_usage_and_timings(
    ollama_fake: OllamaFake, client: ollama.Client
) -> None:
    ollama_fake.push(Reply(text="Blue, mostly.", usage=(9, 3)))
    r = client.chat(model="llama3.2", messages=[{"role": "user", "content": "Sky colour?"}])
    assert isinstance(r, ollama.ChatResponse)
    assert r.message.role == "assistant" and r.message.content == "Blue, mostly."
    assert r.done is True and r.done_reason == "stop"
    assert (r.prompt_eval_count, r.eval_count) == (9, 3)
    assert r.total_duration and r.load_duration is not None and r.eval_duration
    assert r.model == "llama3.2"
    assert ollama_fake.requests[-1].json["stream"] is False


def test_chat_stream_is_ndjson_ending_with_done(
    ollama_fake: OllamaFake, client: ollama.Client
) -> None:
    ollama_fake.push(Reply(text="one two three", usage=(4, 3)))
    parts = list(
        client.chat(model="llama3.2", messages=[{"role": "user", "content": "x"}], stream=True)
    )
    assert all(isinstance(p, ollama.ChatResponse) for p in parts)
    assert "".join(p.message.content or "" for p in parts) == "one two three"
    assert [p.done for p in parts] == [False] * (len(parts) - 1) + [True]
    assert parts[-1].done_reason == "stop" and parts[-1].eval_count == 3
    raw = httpx.post(
        ollama_fake.url + "/api/chat", json={"model": "llama3.2", "messages": []}
    )  # no "stream": streams
    assert raw.headers["content-type"] == "application/x-ndjson"
    assert len(raw.text.strip().splitlines()) >= 2


def test_thinking_is_separate_and_only_when_asked(
    ollama_fake: OllamaFake, client: ollama.Client
) -> None:
    ollama_fake.push(
        Reply(text="42", thinking="six times seven"),
        Reply(text="42", thinking="six times seven"),
        Reply(text="42", thinking="six times seven"),
    )
    r = client.chat(model="qwen3:0.6b", messages=[{"role": "user", "content": "?"}], think=True)
    assert (r.message.thinking, r.message.content) == ("six times seven", "42")
    parts = list(client.chat(model="qwen3:0.6b", messages=[], think=True, stream=True))
    assert "".join(p.message.thinking or "" for p in parts) == "six times seven"
    assert "".join(p.message.content or "" for p in parts) == "42"
    plain = client.chat(model="qwen3:0.6b", messages=[])
    assert plain.message.thinking is None


def test_tool_calls_parse_with_object_arguments(
    ollama_fake: OllamaFake, client: ollama.Client
) -> None:
    call = {"name": "get_weather", "arguments": {"city": "Oslo"}}
    ollama_fake.push(Reply(text="", tool_calls=[call]), Reply(text="", tool_calls=[call]))
    r = client.chat(model="llama3.2", messages=[])
    assert r.message.tool_calls is not None
    assert r.message.tool_calls[0].function.name == "get_weather"
    assert r.message.tool_calls[0].function.arguments == {"city": "Oslo"}
    parts = list(client.chat(model="llama3.2", messages=[], stream=True))
    calls = [c for p in parts for c in (p.message.tool_calls or [])]
    assert [c.function.name for c in calls] == ["get_weather"]


def test_generate_plain_and_stream(ollama_fake: OllamaFake, client: ollama.Client) -> None:
    ollama_fake.push(Reply(text="Once upon a time"), Reply(text="Once upon a time"))
    r = client.generate(model="llama3.2", prompt="Tell a story")
    assert isinstance(r, ollama.GenerateResponse)
    assert r.response == "Once upon a time" and r.done and r.context
    parts = list(client.generate(model="llama3.2", prompt="Tell", stream=True))
    assert "".join(p.response or "" for p in parts) == "Once upon a time"
    assert parts[-1].done and parts[-1].done_reason == "stop"


def test_embed_returns_one_deterministic_vector_per_input(
    ollama_fake: OllamaFake, client: ollama.Client
) -> None:
    r = client.embed(model="nomic-embed-text", input=["alpha", "beta", "alpha"])
    assert isinstance(r, ollama.EmbedResponse)
    assert len(r.embeddings) == 3 and all(len(v) == 8 for v in r.embeddings)
    assert r.embeddings[0] == r.embeddings[2] != r.embeddings[1]
    assert abs(sum(x * x for x in r.embeddings[0]) - 1.0) < 1e-9  # unit length
    assert r.prompt_eval_count == 3


def test_list_show_ps(ollama_fake: OllamaFake, client: ollama.Client) -> None:
    listed = client.list()
    assert isinstance(listed, ollama.ListResponse)
    names = [m.model for m in listed.models]
    assert "llama3.2:latest" in names and "nomic-embed-text:latest" in names
    details = next(m for m in listed.models if m.model == "llama3.2:latest").details
    assert details is not None and details.parameter_size == "3.2B"
    shown = client.show("qwen3:0.6b")
    assert isinstance(shown, ollama.ShowResponse)
    assert shown.modelinfo is not None and shown.modelinfo["qwen3.context_length"] == 40960
    assert shown.capabilities == ["completion", "tools", "thinking"]
    assert client.ps().models == []
    ollama_fake.push(Reply(text="hi"))
    client.chat(model="llama3.2", messages=[])
    assert [m.model for m in client.ps().models] == ["llama3.2:latest"]


def test_pull_streams_progress_then_the_model_is_listed(
    ollama_fake: OllamaFake, client: ollama.Client
) -> None:
    assert "gemma3:270m" not in [m.model for m in client.list().models]
    steps = list(client.pull("gemma3:270m", stream=True))
    assert all(isinstance(s, ollama.ProgressResponse) for s in steps)
    assert steps[0].status == "pulling manifest" and steps[-1].status == "success"
    done = [s.completed for s in steps if s.total]
    assert done == sorted(done) and done[-1] == steps[1].total
    assert all(s.digest and s.digest.startswith("sha256:") for s in steps if s.total)
    assert "gemma3:270m" in [m.model for m in client.list().models]
    assert client.pull("gemma3:270m").status == "success"  # non-streamed form


def test_version_and_root(ollama_fake: OllamaFake) -> None:
    assert httpx.get(ollama_fake.url + "/api/version").json() == {"version": "0.12.6"}
    assert httpx.get(ollama_fake.url + "/").text == "Ollama is running"


def test_errors_use_ollamas_shape_and_wording(
    ollama_fake: OllamaFake, client: ollama.Client
) -> None:
    with pytest.raises(ollama.ResponseError) as missing:
        client.chat(model="mistral", messages=[])
    assert missing.value.status_code == 404
    assert missing.value.error == "model 'mistral' not found"
    with pytest.raises(ollama.ResponseError) as unknown:
        list(client.pull("no-such-thing", stream=True))
    assert "file does not exist" in unknown.value.error
    ollama_fake.push(Reply(status=503, headers={"Retry-After": "2"}))
    with pytest.raises(ollama.ResponseError) as busy:
        client.chat(model="llama3.2", messages=[])
    assert busy.value.status_code == 503 and "server busy" in busy.value.error


def test_error_inside_a_stream_is_raised_by_the_client(
    ollama_fake: OllamaFake, client: ollama.Client
) -> None:
    ollama_fake.push(
        Reply(text="a b c d", extra={"stream_error": "runner crashed", "stream_error_after": 2})
    )
    got: list[str] = []
    with pytest.raises(ollama.ResponseError) as info:
        for p in client.chat(model="llama3.2", messages=[], stream=True):
            got.append(p.message.content or "")
    assert info.value.error == "runner crashed"
    assert got == ["a ", "b "]


def test_required_key_is_checked_like_ollama_cloud() -> None:
    with OllamaFake(require_key="cloud-key-123") as fake:
        with pytest.raises(ollama.ResponseError) as info, ollama.Client(host=fake.url) as bad:
            bad.list()
        assert info.value.status_code == 401
        with ollama.Client(
            host=fake.url, headers={"Authorization": "Bearer cloud-key-123"}
        ) as good:
            assert good.list().models


async def test_async_client_parses_the_stream(ollama_fake: OllamaFake) -> None:
    ollama_fake.push(Reply(text="async words here"))
    async with ollama.AsyncClient(host=ollama_fake.url) as client:
        parts = [p async for p in await client.chat(model="llama3.2", messages=[], stream=True)]
    assert "".join(p.message.content or "" for p in parts) == "async words here"
