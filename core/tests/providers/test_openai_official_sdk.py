"""The official ``openai`` client parses every answer of the OpenAI-compatible fakes.

A fake that the real client rejects would make the llmcore tests prove nothing, so each
kind of answer (plain, streamed, tool calls, completions, embeddings in both encodings,
model lists of the three fakes, and the error shapes) goes through ``openai.OpenAI``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
from llmcore.testing.fakes import LMStudioFake, OpenAIFake, Reply, VLLMFake

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture(params=[OpenAIFake, VLLMFake, LMStudioFake])
def fake(request: pytest.FixtureRequest) -> Iterator[OpenAIFake]:
    with request.param() as server:
        yield server


@pytest.fixture
def client(fake: OpenAIFake) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(base_url=fake.base_url, api_key="test-key", max_retries=0, timeout=10)
    yield c
    c.close()


def test_chat_plain(fake: OpenAIFake, client: openai.OpenAI) -> None:
    fake.push(Reply(text="plain answer", usage=(5, 2)))
    r = client.chat.completions.create(model=fake.models[0], messages=MESSAGES)  # type: ignore[arg-type]
    assert r.object == "chat.completion"
    assert r.choices[0].message.content == "plain answer"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None and (r.usage.prompt_tokens, r.usage.completion_tokens) == (5, 2)


def test_chat_tool_calls_plain_and_streamed(fake: OpenAIFake, client: openai.OpenAI) -> None:
    call = {"name": "read_file", "arguments": {"path": "x.py"}, "id": "call_7"}
    fake.push(Reply(text="", tool_calls=[call]), Reply(text="", tool_calls=[call]))
    r = client.chat.completions.create(model=fake.models[0], messages=MESSAGES)  # type: ignore[arg-type]
    tc = r.choices[0].message.tool_calls
    assert r.choices[0].finish_reason == "tool_calls"
    assert tc is not None and tc[0].id == "call_7"
    assert tc[0].function.name == "read_file"  # type: ignore[union-attr]
    assert json.loads(tc[0].function.arguments) == {"path": "x.py"}  # type: ignore[union-attr]
    stream = client.chat.completions.create(
        model=fake.models[0],
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
    )
    args = ""
    names = []
    finish = None
    for chunk in stream:
        for d in chunk.choices[0].delta.tool_calls or []:
            if d.function and d.function.name:
                names.append(d.function.name)
            args += (d.function.arguments or "") if d.function else ""
        finish = chunk.choices[0].finish_reason or finish
    assert names == ["read_file"] and json.loads(args) == {"path": "x.py"}
    assert finish == "tool_calls"


@pytest.mark.parametrize("include_usage", [True, False])
def test_chat_stream(fake: OpenAIFake, client: openai.OpenAI, include_usage: bool) -> None:
    fake.push(Reply(text="streamed words arrive", usage=(3, 3)))
    kw = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = client.chat.completions.create(
        model=fake.models[0],
        messages=MESSAGES,  # type: ignore[arg-type, call-overload]
        stream=True,
        **kw,
    )
    text, usage, finish = "", None, None
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    assert text == "streamed words arrive" and finish == "stop"
    assert (usage is not None) is include_usage
    if usage:
        assert usage.completion_tokens == 3


def test_completions_single_list_and_stream(fake: OpenAIFake, client: openai.OpenAI) -> None:
    fake.push(Reply(text="one"), Reply(extra={"texts": ["A", "B", "C"]}), Reply(text="x y"))
    single = client.completions.create(model=fake.models[0], prompt="Once")
    assert single.object == "text_completion" and single.choices[0].text == "one"
    batch = client.completions.create(model=fake.models[0], prompt=["p1", "p2", "p3"])
    assert [c.text for c in batch.choices] == ["A", "B", "C"]
    assert [c.index for c in batch.choices] == [0, 1, 2]
    stream = client.completions.create(model=fake.models[0], prompt="s", stream=True)
    assert "".join(c.choices[0].text for c in stream if c.choices) == "x y"


@pytest.mark.parametrize("encoding", ["float", "base64", None])
def test_embeddings(fake: OpenAIFake, client: openai.OpenAI, encoding: str | None) -> None:
    # Without encoding_format the client asks for base64 and decodes it itself.
    kw = {"encoding_format": encoding} if encoding else {}
    r = client.embeddings.create(model=fake.models[0], input=["a", "b"], **kw)  # type: ignore[arg-type]
    assert len(r.data) == 2 and r.data[1].index == 1
    if encoding == "base64":
        assert isinstance(r.data[0].embedding, str)
    else:
        vec = r.data[0].embedding
        assert len(vec) == fake.embedding_dim and all(isinstance(v, float) for v in vec)
    assert r.usage.prompt_tokens == 2


def test_models_list(fake: OpenAIFake, client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == fake.models


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (403, openai.PermissionDeniedError),
        (404, openai.NotFoundError),
        (422, openai.UnprocessableEntityError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_error_shapes(
    fake: OpenAIFake, client: openai.OpenAI, status: int, error: type[Exception]
) -> None:
    fake.push(Reply(status=status, error="scripted failure", headers={"Retry-After": "1"}))
    with pytest.raises(error) as info:
        client.chat.completions.create(model=fake.models[0], messages=MESSAGES)  # type: ignore[arg-type]
    assert isinstance(info.value, openai.APIStatusError)
    assert info.value.status_code == status
    assert "scripted failure" in info.value.message
    body = info.value.body
    assert isinstance(body, dict) and body.get("message") == "scripted failure"
