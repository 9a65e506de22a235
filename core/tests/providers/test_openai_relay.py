"""OpenAIStream in relay mode (``ChatRequest.relay``): the upstream's own event lines on
the chunks, every rule of the plain mode kept (errors, usage, finish, tool calls, JSON)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from llmcore.errors import ResponseError
from llmcore.http.decoders import BadPayload
from llmcore.providers.openai import OpenAIStream
from llmcore.types import ChatRequest, Message, StreamChunk


def event(delta: dict[str, Any] | None = None, finish: str | None = None, **top: Any) -> bytes:
    body: dict[str, Any] = {"id": "up-1", "object": "chat.completion.chunk", "model": "up-model"}
    if delta is not None or finish is not None:
        body["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    body.update(top)
    return b"data: " + json.dumps(body).encode() + b"\n\n"


USAGE = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
STREAM = [
    event({"role": "assistant", "content": ""}),
    event({"content": "Hel"}),
    event({"reasoning_content": "hmm"}),
    event({"content": "lo", "x_vendor": [1, 2]}),  # a field llmcore does not know passes too
    event({}, "stop"),
    event(choices=[], usage=USAGE),
    b"data: [DONE]\n\n",
]


def run(data: list[bytes], step: int, relay: bool = True) -> list[StreamChunk]:
    req = ChatRequest(messages=[Message("user", "hi")], model="m", relay=relay)
    dec = OpenAIStream("up", req, 64 * 1024)
    whole = b"".join(data)
    out: list[StreamChunk] = []
    for i in range(0, len(whole), step):
        out += dec.feed(whole[i : i + step])
        if dec.done:
            break
    return out + dec.close()


@pytest.mark.parametrize("step", [1, 7, 64, 100_000])
def test_relay_keeps_the_lines_and_reads_the_same_as_plain_mode(step: int) -> None:
    relayed = run(STREAM, step)
    plain = run(STREAM, step, relay=False)
    # the same answer: text, reasoning, finish, usage
    assert "".join(c.content for c in relayed) == "".join(c.content for c in plain) == "Hello"
    assert "".join(c.thinking for c in relayed) == "hmm"
    assert relayed[-1].finish_reason == plain[-1].finish_reason == "stop"
    assert relayed[-1].usage == plain[-1].usage and relayed[-1].usage is not None
    assert relayed[-1].usage.output_tokens == 4
    assert all(c.raw is None for c in plain)
    # the lines, as the server sent them, in order; the usage event on a chunk of its
    # own (with its usage); [DONE] not relayed; the closing chunk adds nothing
    usage_chunks = [c for c in relayed if c.raw and c.usage is not None]
    assert [c.raw for c in usage_chunks] == [STREAM[5]]
    others = b"".join(c.raw or b"" for c in relayed if c not in usage_chunks)
    assert others == b"".join(STREAM[:5])
    assert relayed[-1].raw == b""


def test_events_of_one_read_are_one_chunk() -> None:
    got = run(STREAM, 100_000)
    assert len(got) == 3  # the content events, the usage event, the closing chunk
    assert got[0].content == "Hello" and got[0].model == "up-model"


def test_an_error_object_after_relayed_events_is_raised() -> None:
    data = [*STREAM[:2], b'data: {"error": {"message": "overloaded", "code": 529}}\n\n']
    with pytest.raises(ResponseError, match="overloaded"):
        run(data, 100_000)


def test_llama_cpp_error_lines_are_raised() -> None:
    with pytest.raises(ResponseError, match="slot unavailable"):
        run([STREAM[1], b'error: {"message": "slot unavailable"}\n\n'], 100_000)


@pytest.mark.parametrize(
    "bad",
    [
        b'data: {"choices": [{"delta": {"content": "x"}\n\n',  # cut short, then the end
        b"data: {not json}\n\n",
        b'data: {"a": 1} {"b": 2}\n\n',
        b'data: {"a": 1},{"b": 2}\n\n',  # two values on one line is not one event
    ],
)
def test_an_event_that_is_not_json_is_an_error_not_relayed(bad: bytes) -> None:
    with pytest.raises(ResponseError, match="not valid JSON"):
        run([STREAM[1], bad, STREAM[4], STREAM[6]], 100_000)


def test_invalid_utf8_is_an_error() -> None:
    # the decoder's error; the provider reports it as a ResponseError (as without relay)
    with pytest.raises(BadPayload, match="UTF-8"):
        run([STREAM[1], b'data: {"choices": "\xff\xfe"}\n\n', STREAM[6]], 100_000)


def test_a_multi_line_event_is_read_by_the_sse_rules() -> None:
    # legal SSE: one JSON value over two data lines (the first is not whole JSON)
    multi = b'data: {"choices": [{"index": 0,\ndata:  "delta": {"content": "!"}}]}\n\n'
    got = run([STREAM[1], multi, STREAM[4], STREAM[6]], 100_000)
    assert "".join(c.content for c in got) == "Hel!"
    raw = b"".join(c.raw or b"" for c in got)
    assert raw.count(b"\n\n") == 3  # each event re-framed as SSE a client reads as one
    assert b'data: {"choices": [{"index": 0,\ndata:  "delta"' in raw


def test_tool_calls_are_assembled_while_their_pieces_are_relayed() -> None:
    def tc(**fn: Any) -> bytes:
        return event({"tool_calls": [{"index": 0, "id": "call_1", "function": fn}]})

    data = [tc(name="write", arguments='{"p":'), tc(arguments='"a"}'), event({}, "tool_calls")]
    got = run([*data, STREAM[6]], 100_000)
    assert got[-1].tool_calls == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "write", "arguments": '{"p":"a"}'},
        }
    ]
    assert b"".join(c.raw or b"" for c in got) == b"".join(data)


def test_a_stream_cut_before_its_end_is_still_an_error() -> None:
    with pytest.raises(ResponseError, match="ended before the answer was complete"):
        run(STREAM[:3], 100_000)


def test_relay_is_not_part_of_the_question() -> None:
    req = ChatRequest(messages=[Message("user", "hi")], relay=True)
    assert "relay" not in req.to_dict()
    assert "raw" not in StreamChunk(content="x", raw=b"data: {}\n\n").to_dict()


@pytest.mark.parametrize("relay", [True, False])
def test_content_that_is_not_text_is_an_error(relay: bool) -> None:
    bad = event({"content": ["not", "text"]})
    with pytest.raises(ResponseError, match="not text"):
        run([STREAM[1], bad, STREAM[4], STREAM[6]], 100_000, relay=relay)
