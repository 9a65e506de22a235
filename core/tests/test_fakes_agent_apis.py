"""The Anthropic, OpenAI Responses and Gemini fakes, checked with the official clients.

``anthropic`` and ``openai`` parse every answer into their own typed models: a fake they
reject, or whose parsed values differ from the script, fails here. Gemini has no official
client in the dev environment, so its wire shape is checked field by field against Google's
documented ``GenerateContentResponse``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest
from llmcore.testing.fakes import AnthropicFake, GeminiFake, Reply, ResponsesFake

WRITE = {
    "name": "Write",
    "id": "toolu_1",
    "arguments": {"file_path": "/tmp/x.py", "content": "print('hi')\n"},
}


@pytest.fixture
def anthropic_fake() -> Iterator[AnthropicFake]:
    with AnthropicFake() as fake:
        yield fake


@pytest.fixture
def responses_fake() -> Iterator[ResponsesFake]:
    with ResponsesFake() as fake:
        yield fake


@pytest.fixture
def gemini_fake() -> Iterator[GeminiFake]:
    with GeminiFake() as fake:
        yield fake


def _anthropic(fake: AnthropicFake) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.base_url, api_key="k", max_retries=0)


# -- Anthropic Messages --------------------------------------------------------------------
def test_anthropic_plain_message_with_tool_use(anthropic_fake: AnthropicFake) -> None:
    anthropic_fake.push(Reply(text="Writing it.", tool_calls=[WRITE], usage=(11, 4)))
    msg = _anthropic(anthropic_fake).messages.create(
        model="claude-fake-1", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    )
    assert msg.stop_reason == "tool_use"
    assert [b.type for b in msg.content] == ["text", "tool_use"]
    assert msg.content[0].text == "Writing it."  # type: ignore[union-attr]
    tool = msg.content[1]
    assert tool.type == "tool_use" and tool.name == "Write" and tool.id == "toolu_1"
    assert tool.input == WRITE["arguments"]
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (11, 4)


def test_anthropic_stream_accumulates_text_thinking_and_tool_json(
    anthropic_fake: AnthropicFake,
) -> None:
    anthropic_fake.push(
        Reply(text="Hello there friend", thinking="let me see", tool_calls=[WRITE], usage=(9, 6))
    )
    client = _anthropic(anthropic_fake)
    with client.messages.stream(
        model="claude-fake-1", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        deltas = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(deltas) == "Hello there friend" and len(deltas) == 3
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use"]
    assert final.content[0].thinking == "let me see"  # type: ignore[union-attr]
    assert final.content[2].input == WRITE["arguments"]  # type: ignore[union-attr]
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens == 6
    # The raw SSE carries Anthropic's event names, in order.
    raw = httpx.post(
        anthropic_fake.url + "/v1/messages?beta=true",
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
        json={
            "model": "m",
            "max_tokens": 5,
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        },
    ).text
    names = [ln[7:] for ln in raw.splitlines() if ln.startswith("event: ")]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]


@pytest.mark.parametrize(
    ("status", "cls", "kind"),
    [
        (401, anthropic.AuthenticationError, "authentication_error"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (529, anthropic.InternalServerError, "overloaded_error"),
    ],
)
def test_anthropic_errors_have_anthropic_shape(
    anthropic_fake: AnthropicFake, status: int, cls: type[Exception], kind: str
) -> None:
    anthropic_fake.push(Reply(status=status, error="nope"))
    with pytest.raises(cls) as info:
        _anthropic(anthropic_fake).messages.create(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    body = info.value.body  # type: ignore[attr-defined]
    assert body == {"type": "error", "error": {"type": kind, "message": "nope"}}


def test_anthropic_side_routes_do_not_consume_the_script(anthropic_fake: AnthropicFake) -> None:
    anthropic_fake.push(Reply(text="scripted"))
    client = _anthropic(anthropic_fake)
    assert [m.id for m in client.models.list()] == ["claude-fake-1"]
    count = client.messages.count_tokens(model="m", messages=[{"role": "user", "content": "a b c"}])
    assert count.input_tokens == 3
    msg = client.messages.create(
        model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
    )
    assert msg.content[0].text == "scripted"  # type: ignore[union-attr]
    assert len(anthropic_fake.message_requests()) == 1


# -- OpenAI Responses ----------------------------------------------------------------------
def _openai(fake: ResponsesFake) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.base_url, api_key="k", max_retries=0)


def test_responses_plain_with_function_call(responses_fake: ResponsesFake) -> None:
    call = {"name": "exec_command", "id": "call_1", "arguments": {"cmd": "ls"}}
    responses_fake.push(Reply(text="Running.", tool_calls=[call], usage=(20, 3)))
    resp = _openai(responses_fake).responses.create(model="fake-model", input="hi")
    assert resp.status == "completed" and resp.output_text == "Running."
    fc = next(o for o in resp.output if o.type == "function_call")
    assert fc.name == "exec_command" and fc.call_id == "call_1"  # type: ignore[union-attr]
    assert json.loads(fc.arguments) == {"cmd": "ls"}  # type: ignore[union-attr]
    assert resp.usage is not None
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == (20, 3)


def test_responses_stream_events_in_order(responses_fake: ResponsesFake) -> None:
    call = {"name": "exec_command", "arguments": {"cmd": "printf hi > a.txt"}}
    responses_fake.push(Reply(text="one two", tool_calls=[call], usage=(5, 2)))
    events = list(
        _openai(responses_fake).responses.create(model="fake-model", input="hi", stream=True)
    )
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "one two"
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(args) == call["arguments"]
    done = events[-1].response  # type: ignore[union-attr]
    assert done.usage is not None and done.usage.total_tokens == 7
    assert [o.type for o in done.output] == ["message", "function_call"]
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_responses_stream_through_the_sdk_helper(responses_fake: ResponsesFake) -> None:
    responses_fake.push(Reply(text="all done"))
    with _openai(responses_fake).responses.stream(model="fake-model", input="hi") as stream:
        final = stream.get_final_response()
    assert final.output_text == "all done"


def test_responses_error_shape(responses_fake: ResponsesFake) -> None:
    responses_fake.push(Reply(status=401, error="Incorrect API key provided"))
    with pytest.raises(openai.AuthenticationError) as info:
        _openai(responses_fake).responses.create(model="m", input="x")
    assert info.value.code == "invalid_api_key"
    assert "Incorrect API key" in info.value.message


# -- Gemini --------------------------------------------------------------------------------
def _gen_body(text: str = "hi") -> dict[str, object]:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}]}


def test_gemini_generate_content_shape(gemini_fake: GeminiFake) -> None:
    gemini_fake.push(
        Reply(
            text="Sure.",
            usage=(7, 2),
            tool_calls=[{"name": "write_file", "arguments": {"file_path": "a.py", "content": "x"}}],
        )
    )
    r = httpx.post(
        gemini_fake.url + "/v1beta/models/gemini-fake-1:generateContent",
        json=_gen_body(),
        headers={"x-goog-api-key": "k"},
    )
    assert r.status_code == 200
    data = r.json()
    cand = data["candidates"][0]
    assert cand["finishReason"] == "STOP" and cand["content"]["role"] == "model"
    assert cand["content"]["parts"] == [
        {"text": "Sure."},
        {"functionCall": {"name": "write_file", "args": {"file_path": "a.py", "content": "x"}}},
    ]
    assert data["usageMetadata"] == {
        "promptTokenCount": 7,
        "candidatesTokenCount": 2,
        "totalTokenCount": 9,
    }
    assert data["modelVersion"] == "gemini-fake-1"


def test_gemini_sse_stream_joins_to_the_text(gemini_fake: GeminiFake) -> None:
    gemini_fake.push(Reply(text="alpha beta gamma", usage=(3, 3)))
    r = httpx.post(
        gemini_fake.url + "/v1beta/models/gemini-fake-1:streamGenerateContent?alt=sse",
        json=_gen_body(),
    )
    assert r.headers["content-type"].startswith("text/event-stream")
    chunks = [json.loads(ln[6:]) for ln in r.text.splitlines() if ln.startswith("data: ")]
    text = "".join(
        p.get("text", "") for c in chunks for p in c["candidates"][0]["content"]["parts"]
    )
    assert text == "alpha beta gamma"
    assert [c["candidates"][0].get("finishReason") for c in chunks][-1] == "STOP"
    assert all("finishReason" not in c["candidates"][0] for c in chunks[:-1])
    assert chunks[-1]["usageMetadata"]["totalTokenCount"] == 6
    # Without alt=sse Google answers one JSON array of the same chunks.
    gemini_fake.push(Reply(text="alpha beta gamma", usage=(3, 3)))
    arr = httpx.post(
        gemini_fake.url + "/v1beta/models/gemini-fake-1:streamGenerateContent", json=_gen_body()
    ).json()
    assert [c["candidates"][0]["content"] for c in arr] == [
        c["candidates"][0]["content"] for c in chunks
    ]


def test_gemini_errors_in_google_shape(gemini_fake: GeminiFake) -> None:
    gemini_fake.push(Reply(status=429, error="Quota exceeded", headers={"Retry-After": "2"}))
    r = httpx.post(gemini_fake.url + "/v1beta/models/m:generateContent", json=_gen_body())
    assert r.status_code == 429 and r.headers["retry-after"] == "2"
    assert r.json() == {
        "error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}
    }


def test_gemini_models_and_count_tokens_leave_the_script(gemini_fake: GeminiFake) -> None:
    gemini_fake.push(Reply(text="kept"))
    models = httpx.get(gemini_fake.url + "/v1beta/models").json()["models"]
    assert models[0]["name"] == "models/gemini-fake-1"
    count = httpx.post(
        gemini_fake.url + "/v1beta/models/m:countTokens", json=_gen_body("a b c d")
    ).json()
    assert count == {"totalTokens": 4}
    r = httpx.post(gemini_fake.url + "/v1beta/models/m:generateContent", json=_gen_body())
    assert r.json()["candidates"][0]["content"]["parts"] == [{"text": "kept"}]
