"""``/v1/messages`` through the official ``anthropic`` SDK: plain, the full SSE event
sequence, system prompts, tools and tool results, images, count_tokens, and errors in
Anthropic's own shape. Plain chat goes through [a 500, the real llama.cpp server]."""

from __future__ import annotations

import json

import anthropic
import pytest
from gateway_support import GatewayProcess
from llmcore.testing.fakes import OpenAIFake
from llmcore.testing.fakes.base import Reply

TOOL = {
    "name": "write_file",
    "description": "Write a file",
    "input_schema": {
        "type": "object",
        "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
        "required": ["path", "content"],
    },
}
ASK = [{"role": "user", "content": "Say hello in one word."}]
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAAB"
    "JRU5ErkJggg=="
)


def sdk(gw: GatewayProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key="unused", max_retries=0, timeout=120)


def test_plain_message_fails_over_to_llama(
    llama_gateway: GatewayProcess, upstreams: dict[str, OpenAIFake]
) -> None:
    before = len(upstreams["broken"].requests)
    msg = sdk(llama_gateway).messages.create(
        model="chat", max_tokens=12, messages=ASK, system="You are terse."
    )
    assert len(upstreams["broken"].requests) > before
    assert msg.role == "assistant" and msg.model == "chat"
    assert msg.content[0].type == "text"
    assert msg.stop_reason in ("end_turn", "max_tokens")
    assert msg.usage.output_tokens > 0


def test_stream_full_event_sequence(
    gateway: GatewayProcess, upstreams: dict[str, OpenAIFake]
) -> None:
    upstreams["tools"].push(Reply(text="Hello there friend"))
    client = sdk(gateway)
    kinds: list[str] = []
    with client.messages.stream(model="coder", max_tokens=50, messages=ASK, system="Be kind.") as s:
        for event in s:
            kinds.append(event.type)
        final = s.get_final_message()
    assert final.content[0].text == "Hello there friend"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    core = [k for k in kinds if k not in ("text",)]
    assert core[0] == "message_start" and core[-1] == "message_stop"
    assert (
        core.index("content_block_start")
        < core.index("content_block_delta")
        < core.index("content_block_stop")
        < core.index("message_delta")
    )
    sent = upstreams["tools"].requests[-1].json
    assert sent["messages"][0] == {"role": "system", "content": "Be kind."}
    assert sent["max_tokens"] == 50


def test_tool_use_and_tool_result(
    gateway: GatewayProcess, upstreams: dict[str, OpenAIFake]
) -> None:
    fake = upstreams["tools"]
    fake.push(
        Reply(
            text="",
            tool_calls=[
                {
                    "id": "toolu_1",
                    "name": "write_file",
                    "arguments": {"path": "a.txt", "content": "hi"},
                }
            ],
        )
    )
    client = sdk(gateway)
    msg = client.messages.create(
        model="coder", max_tokens=100, messages=ASK, tools=[TOOL], tool_choice={"type": "any"}
    )
    assert msg.stop_reason == "tool_use"
    use = next(b for b in msg.content if b.type == "tool_use")
    assert use.id == "toolu_1" and use.input == {"path": "a.txt", "content": "hi"}
    sent = fake.requests[-1].json
    assert sent["tools"][0]["function"]["parameters"] == TOOL["input_schema"]
    assert sent["tool_choice"] == "required"

    fake.push(Reply(text="Written."))
    follow = client.messages.create(
        model="coder",
        max_tokens=100,
        tools=[TOOL],
        messages=[
            *ASK,
            {"role": "assistant", "content": [b.model_dump() for b in msg.content]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"},
                    {"type": "text", "text": "thanks"},
                ],
            },
        ],
    )
    assert follow.content[0].text == "Written."
    msgs = fake.requests[-1].json["messages"]
    assert msgs[1]["tool_calls"][0]["id"] == "toolu_1"
    assert json.loads(msgs[1]["tool_calls"][0]["function"]["arguments"]) == use.input
    assert msgs[2] == {"role": "tool", "content": "ok", "tool_call_id": "toolu_1"}
    assert msgs[3] == {"role": "user", "content": "thanks"}


def test_streamed_tool_use(gateway: GatewayProcess, upstreams: dict[str, OpenAIFake]) -> None:
    upstreams["tools"].push(
        Reply(
            text="I will write it.",
            tool_calls=[
                {"id": "toolu_9", "name": "write_file", "arguments": {"path": "b", "content": "x"}}
            ],
        )
    )
    with sdk(gateway).messages.stream(
        model="coder", max_tokens=100, messages=ASK, tools=[TOOL]
    ) as s:
        final = s.get_final_message()
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[1].input == {"path": "b", "content": "x"}
    assert final.stop_reason == "tool_use"


def test_image_reaches_the_upstream_as_a_data_url(
    gateway: GatewayProcess, upstreams: dict[str, OpenAIFake]
) -> None:
    upstreams["tools"].push(Reply(text="A pixel."))
    msg = sdk(gateway).messages.create(
        model="coder",
        max_tokens=20,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                    {"type": "text", "text": "What is this?"},
                ],
            }
        ],
    )
    assert msg.content[0].text == "A pixel."
    parts = upstreams["tools"].requests[-1].json["messages"][0]["content"]
    assert {"type": "text", "text": "What is this?"} in parts
    assert {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}} in parts


def test_count_tokens_and_errors_in_anthropic_shape(
    gateway: GatewayProcess, upstreams: dict[str, OpenAIFake]
) -> None:
    client = sdk(gateway)
    count = client.messages.count_tokens(model="coder", messages=ASK, system="x" * 400)
    assert count.input_tokens >= 100
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.messages.create(
            model="coder",
            max_tokens=10,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "source": {"type": "text", "media_type": "text/plain", "data": "x"},
                        }
                    ],
                }
            ],
        )
    assert bad.value.body["error"]["type"] == "invalid_request_error"
    assert "cannot be carried" in bad.value.body["error"]["message"]
    upstreams["tools"].push(Reply(text="ok"))
    raw = client.messages.with_raw_response.create(
        model="coder",
        max_tokens=10,
        messages=ASK,
        tools=[TOOL, {"type": "web_search_20250305", "name": "web_search"}],
    )
    assert raw.headers["x-llmcore-dropped-tools"] == "web_search"
    assert [t["function"]["name"] for t in upstreams["tools"].requests[-1].json["tools"]] == [
        "write_file"
    ]
    status, body, _ = gateway.post("/v1/messages", {"model": "coder", "messages": ASK})
    assert status == 400 and body["type"] == "error" and "max_tokens" in body["error"]["message"]
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="nope/x", max_tokens=10, messages=ASK)


def test_failure_mid_stream_is_an_error_event(
    gateway: GatewayProcess, upstreams: dict[str, OpenAIFake]
) -> None:
    upstreams["tools"].push(Reply(text="one two three four", cut_after=2))
    text: list[str] = []
    with (
        pytest.raises(anthropic.APIError),
        sdk(gateway).messages.stream(model="coder", max_tokens=50, messages=ASK) as s,
    ):
        for piece in s.text_stream:
            text.append(piece)
    assert "".join(text).startswith("one")
