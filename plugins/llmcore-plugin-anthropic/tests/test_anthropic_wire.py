"""The Messages wire format with no server: bodies built, answers and event streams read,
errors mapped. Event sequences are the ones Anthropic documents for streaming."""

from __future__ import annotations

import json
from typing import Any

import pytest
from llmcore import (
    AuthenticationError,
    BadRequestError,
    ChatRequest,
    Message,
    ModelNotFoundError,
    RateLimitError,
    ResponseError,
)
from llmcore_anthropic import wire


def body(*msgs: Message, **kw: Any) -> dict[str, Any]:
    return wire.request_body(
        ChatRequest(messages=list(msgs), **kw), "claude-x", default_max_tokens=1024, stream=False
    )


def test_system_goes_top_level_and_max_tokens_is_always_sent() -> None:
    b = body(Message("system", "be brief"), Message("system", "be kind"), Message("user", "hi"))
    assert b["system"] == "be brief\n\nbe kind"
    assert b["messages"] == [{"role": "user", "content": "hi"}]
    assert b["max_tokens"] == 1024 and b["model"] == "claude-x"
    assert body(Message("user", "hi"), max_tokens=5)["max_tokens"] == 5


def test_sampling_and_stop_sequences() -> None:
    b = wire.request_body(
        ChatRequest(
            messages=[Message("user", "x")], temperature=0.1, top_p=0.9, stop=["END"], seed=3
        ),
        "m",
        default_max_tokens=10,
        stream=True,
        top_k=40,
        thinking_budget=2048,
        extra_body={"metadata": {"user_id": "u"}},
    )
    assert (b["temperature"], b["top_p"], b["top_k"]) == (0.1, 0.9, 40)
    assert b["stop_sequences"] == ["END"] and "stop" not in b
    assert "seed" not in b, "the API has no seed: it must not be sent to be refused"
    assert b["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert b["stream"] is True and b["metadata"] == {"user_id": "u"}


def test_tools_and_tool_results_translate_from_openai_shape() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    call = {
        "id": "toolu_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    b = body(
        Message("user", "weather?"),
        Message("assistant", "Checking.", tool_calls=[call]),
        Message("tool", "18C", tool_call_id="toolu_1"),
        Message("user", "thanks"),
        tools=tools,
        tool_choice="required",
    )
    assert b["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather in a city",
            "input_schema": tools[0]["function"]["parameters"],
        }
    ]
    assert b["tool_choice"] == {"type": "any"}
    assert b["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Checking."},
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
        ],
    }
    # The tool result and the next user text share one user turn, as the API requires.
    assert b["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
            {"type": "text", "text": "thanks"},
        ],
    }
    assert len(b["messages"]) == 3


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ({"type": "function", "function": {"name": "f"}}, {"type": "tool", "name": "f"}),
    ],
)
def test_tool_choice(choice: Any, expected: dict[str, Any]) -> None:
    assert wire.tool_choice(choice) == expected


def test_images_become_image_blocks() -> None:
    png = "iVBORw0KGgoAAAANSUhEUgAAAAE="
    b = body(
        Message(
            "user",
            "what is it?",
            images=["https://example.org/cat.jpg", "data:image/jpeg;base64,/9j/4AAQ", png],
        )
    )
    blocks = b["messages"][0]["content"]
    assert blocks[0] == {
        "type": "image",
        "source": {"type": "url", "url": "https://example.org/cat.jpg"},
    }
    assert blocks[1]["source"] == {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}
    assert blocks[2]["source"]["media_type"] == "image/png"
    assert blocks[3] == {"type": "text", "text": "what is it?"}


def test_headers_carry_key_version_and_beta() -> None:
    h = wire.request_headers("sk-ant-x", "2023-06-01", ["prompt-caching-2024-07-31", "b2"])
    assert h["x-api-key"] == "sk-ant-x" and h["anthropic-version"] == "2023-06-01"
    assert h["anthropic-beta"] == "prompt-caching-2024-07-31,b2"
    assert "authorization" not in {k.lower() for k in h}
    assert "x-api-key" not in wire.request_headers(None)


MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-x",
    "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "s"},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Oslo"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 10,
        "output_tokens": 7,
        "cache_read_input_tokens": 300,
        "cache_creation_input_tokens": 20,
    },
}


def test_parse_message_keeps_thinking_apart_and_translates_tool_use() -> None:
    r = wire.parse_message(MESSAGE, "claude")
    assert r.content == "Let me check." and r.thinking == "hmm"
    assert r.finish_reason == "tool_calls" and r.model == "claude-x"
    assert r.tool_calls == [
        {
            "id": "toolu_9",
            "type": "function",
            "function": {"name": "get_weather", "arguments": json.dumps({"city": "Oslo"})},
        }
    ]
    # Cache reads and writes are inside input_tokens (llmcore's convention), reads cached.
    assert (r.usage.input_tokens, r.usage.cached_tokens, r.usage.output_tokens) == (330, 300, 7)


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
    ],
)
def test_stop_reasons(stop: str, finish: str) -> None:
    assert wire.parse_message({**MESSAGE, "stop_reason": stop}, "c").finish_reason == finish


def test_an_error_object_is_not_taken_for_a_message() -> None:
    with pytest.raises(ResponseError, match="not an Anthropic message"):
        wire.parse_message({"type": "error", "error": {"type": "api_error"}}, "c")


def sse(*events: dict[str, Any]) -> list[bytes]:
    """Each event as the API frames it, one network piece per event."""
    return [f"event: {ev['type']}\ndata: {json.dumps(ev)}\n\n".encode() for ev in events]


def decoder() -> wire.EventStream:
    return wire.EventStream("claude", 1 << 20)


STREAM = sse(
    {
        "type": "message_start",
        "message": {
            "id": "m",
            "type": "message",
            "role": "assistant",
            "model": "claude-x",
            "content": [],
            "usage": {"input_tokens": 25, "output_tokens": 1, "cache_read_input_tokens": 5},
        },
    },
    {"type": "ping"},
    {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "thinking", "thinking": "", "signature": ""},
    },
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "thinking_delta", "thinking": "weighing it"},
    },
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "signature_delta", "signature": "sig"},
    },
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "On "}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "it."}},
    {"type": "content_block_stop", "index": 1},
    {
        "type": "content_block_start",
        "index": 2,
        "content_block": {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}},
    },
    {
        "type": "content_block_delta",
        "index": 2,
        "delta": {"type": "input_json_delta", "partial_json": '{"city": "Os'},
    },
    {
        "type": "content_block_delta",
        "index": 2,
        "delta": {"type": "input_json_delta", "partial_json": 'lo"}'},
    },
    {"type": "content_block_stop", "index": 2},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"output_tokens": 15},
    },
    {"type": "message_stop"},
)


def test_stream_decoder_reads_the_whole_event_sequence() -> None:
    d = decoder()
    # Split the bytes at awkward places: framing must not depend on network pieces.
    raw = b"".join(STREAM)
    chunks = [c for i in range(0, len(raw), 7) for c in d.feed(raw[i : i + 7])]
    assert d.done
    assert [c.thinking for c in chunks if c.thinking] == ["weighing it"]
    assert [c.content for c in chunks if c.content] == ["On ", "it."]
    assert all(c.finish_reason is None for c in chunks)
    [last] = d.close()
    assert last.finish_reason == "tool_calls" and last.model == "claude-x"
    assert last.tool_calls == [
        {
            "id": "toolu_2",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
        }
    ]
    assert (last.usage.input_tokens, last.usage.output_tokens, last.usage.cached_tokens) == (
        30,
        15,
        5,
    )


def test_an_error_event_raises_and_overloaded_is_retryable() -> None:
    d = decoder()
    pieces = STREAM[:3] + sse(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    with pytest.raises(ResponseError) as info:
        for piece in pieces:
            d.feed(piece)
    assert info.value.retryable and info.value.status == 529
    assert "overloaded_error" in str(info.value)


def test_a_stream_without_message_stop_is_an_error_not_a_short_answer() -> None:
    d = decoder()
    for piece in STREAM[:-1]:
        d.feed(piece)
    with pytest.raises(ResponseError, match="before message_stop") as info:
        d.close()
    assert info.value.retryable


def err(
    status: int,
    kind: str,
    message: str = "m",
    headers: dict[str, str] | None = None,
    base_url: str | None = "https://api.anthropic.com",
) -> Any:
    text = json.dumps({"type": "error", "error": {"type": kind, "message": message}})
    return wire.error_for("claude", "claude-x", status, text, headers or {}, base_url)


def test_error_mapping() -> None:
    assert isinstance(err(401, "authentication_error"), AuthenticationError)
    assert isinstance(err(403, "permission_error"), AuthenticationError)
    limited = err(429, "rate_limit_error", headers={"retry-after": "12"})
    assert isinstance(limited, RateLimitError) and limited.retry_after == 12.0
    bad = err(400, "invalid_request_error", "messages: roles must alternate")
    assert isinstance(bad, BadRequestError) and "roles must alternate" in str(bad)
    assert not bad.retryable
    overloaded = err(529, "overloaded_error", "Overloaded")
    assert isinstance(overloaded, ResponseError) and overloaded.retryable
    assert overloaded.status == 529 and "overloaded" in str(overloaded)
    assert err(500, "api_error").retryable
    assert not err(501, "not_supported_error").retryable, "501: retrying cannot help"


def test_404_hint_fits_anthropic_base_urls() -> None:
    wrong = err(404, "not_found_error", base_url="https://api.anthropic.com/v1")
    assert isinstance(wrong, ModelNotFoundError)
    assert "without /v1" in (wrong.hint or "") and "https://api.anthropic.com" in wrong.hint
    right = err(404, "not_found_error", "model: claude-x")
    assert "llmcore models --provider claude" in (right.hint or "")
    assert "ends with /v1" not in (right.hint or ""), "the OpenAI hint does not fit here"


def test_models_list() -> None:
    data = {
        "data": [
            {
                "type": "model",
                "id": "claude-x",
                "display_name": "Claude X",
                "created_at": "2025-01-01T00:00:00Z",
            }
        ],
        "has_more": False,
    }
    [m] = wire.parse_models(data, "claude")
    assert (m.name, m.provider, m.details["display_name"]) == ("claude-x", "claude", "Claude X")
    with pytest.raises(ResponseError):
        wire.parse_models({"models": []}, "claude")
