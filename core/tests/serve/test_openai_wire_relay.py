"""openai_wire.ChatStream with relayed chunks: the upstream's events go out as they came;
what the gateway adds (a usage chunk, [DONE]) agrees with them."""

from __future__ import annotations

import json

from llmcore.serve import openai_wire
from llmcore.types import StreamChunk, Usage

HEAD = b'data: {"id":"up-7","object":"chat.completion.chunk","model":"up-model",'
FIRST = HEAD + b'"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"}}]}\n\n'
FINISH = HEAD + b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
USAGE_EVENT = (
    HEAD + b'"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3}}\n\n'
)
U = Usage(input_tokens=2, output_tokens=1)


def events(data: bytes) -> list[object]:
    out: list[object] = []
    for block in data.split(b"\n\n"):
        if block:
            assert block.startswith(b"data: ")
            body = block[6:]
            out.append("[DONE]" if body == b"[DONE]" else json.loads(body))
    return out


def stream(include_usage: bool, chunks: list[StreamChunk]) -> list[object]:
    enc = openai_wire.ChatStream("route", include_usage)
    return events(b"".join(enc.chunk(c) for c in chunks) + enc.end())


def test_relayed_events_go_out_unchanged_and_usage_only_when_asked() -> None:
    chunks = [
        StreamChunk(content="Hi", raw=FIRST + FINISH),
        StreamChunk(usage=U, raw=USAGE_EVENT),
        StreamChunk(finish_reason="stop", usage=U, raw=b""),
    ]
    enc = openai_wire.ChatStream("route", include_usage=False)
    out = b"".join(enc.chunk(c) for c in chunks) + enc.end()
    assert out == FIRST + FINISH + b"data: [DONE]\n\n"  # no usage, no second role/finish
    asked = stream(True, chunks)
    assert asked == [*events(FIRST + FINISH + USAGE_EVENT), "[DONE]"]  # the upstream's, once


def test_usage_the_upstream_did_not_send_is_added_in_its_id_and_model() -> None:
    chunks = [
        StreamChunk(content="Hi", raw=FIRST + FINISH),
        StreamChunk(finish_reason="stop", usage=U, raw=b""),
    ]
    got = stream(True, chunks)
    last = got[-2]
    assert isinstance(last, dict)
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 1
    assert last["id"] == "up-7" and last["model"] == "up-model"  # every chunk agrees
    assert got[-1] == "[DONE]"


def test_chunks_without_raw_are_rendered_as_before() -> None:
    got = stream(False, [StreamChunk(content="Hi"), StreamChunk(finish_reason="stop", usage=U)])
    assert isinstance(got[0], dict) and got[0]["model"] == "route"
    assert got[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [g["choices"][0]["finish_reason"] for g in got[:-1] if isinstance(g, dict)][-1] == "stop"
