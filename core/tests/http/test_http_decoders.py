"""The sans-IO decoders of llmcore.http: lines, SSE, NDJSON, bounded decompression."""

from __future__ import annotations

import gzip
import zlib

import pytest
from llmcore.http import (
    BadPayload,
    BodyDecoder,
    LimitExceeded,
    LineDecoder,
    NDJSONDecoder,
    SSEDecoder,
    SSEEvent,
    SSERun,
)


def feed_all(dec: LineDecoder, data: bytes, step: int) -> list[bytes]:
    out: list[bytes] = []
    for i in range(0, len(data), step):
        out += dec.feed(data[i : i + step])
    return out + dec.close()


@pytest.mark.parametrize("step", [1, 3, 7, 1000])
def test_lines_split_the_same_whatever_the_chunking(step: int) -> None:
    data = b"alpha\r\nbeta\n\ngamma-without-newline"
    assert feed_all(LineDecoder(100), data, step) == [
        b"alpha",
        b"beta",
        b"",
        b"gamma-without-newline",
    ]


def test_a_line_longer_than_the_limit_is_refused_before_it_is_complete() -> None:
    dec = LineDecoder(1024)
    dec.feed(b"x" * 1000)
    with pytest.raises(LimitExceeded) as info:
        dec.feed(b"x" * 100)  # no newline yet: the buffer alone passes the limit
    assert info.value.limit == 1024


def test_a_long_line_fed_in_small_pieces_is_kept_whole() -> None:
    # 300 KB in 1 KB pieces: each piece is searched once (the old decoder rescanned the
    # whole buffer per piece and took seconds here).
    dec = LineDecoder(1 << 20)
    payload = b"y" * 300_000
    out: list[bytes] = []
    for i in range(0, len(payload), 1024):
        out += dec.feed(payload[i : i + 1024])
    out += dec.feed(b"\n")
    assert out == [payload]


def test_sse_events_are_joined_and_dispatched_on_blank_lines() -> None:
    dec = SSEDecoder(1000)
    events = dec.feed(b': ping\n\nevent: delta\ndata: one\ndata: two\nid: 7\n\ndata: {"a"')
    assert [(e.event, e.data, e.id) for e in events] == [("delta", "one\ntwo", "7")]
    events = dec.feed(b": 1}\n\n")
    assert events[0].json() == {"a": 1} and events[0].event == "message"
    assert dec.close() == []


def test_sse_eager_mode_dispatches_a_complete_json_line_at_once() -> None:
    dec = SSEDecoder(1000, eager=True, fields=("error",))
    events = dec.feed(b'data: {"x": 1}\n')
    assert len(events) == 1 and events[0].parsed and events[0].json() == {"x": 1}
    assert dec.feed(b"\n") == []  # the blank line after it dispatches nothing twice
    (err,) = dec.feed(b'error: {"message": "boom"}\n')
    assert err.event == "error" and "boom" in err.data


def test_sse_event_over_the_limit_is_refused() -> None:
    dec = SSEDecoder(100)
    dec.feed(b"data: " + b"a" * 60 + b"\n")
    with pytest.raises(LimitExceeded):
        dec.feed(b"data: " + b"b" * 60 + b"\n")


def test_invalid_utf8_is_named_as_such() -> None:
    with pytest.raises(BadPayload, match="UTF-8"):
        SSEDecoder(100).feed(b"data: \xff\xfe\n\n")
    with pytest.raises(BadPayload, match="UTF-8"):
        NDJSONDecoder(100).feed(b'{"a": "\xff"}\n')


def test_ndjson_objects_and_a_bad_line() -> None:
    dec = NDJSONDecoder(100)
    assert dec.feed(b'{"a": 1}\n\n{"b"') == [{"a": 1}]
    assert dec.feed(b": 2}") == []
    assert dec.close() == [{"b": 2}]  # the last line needs no newline
    dec = NDJSONDecoder(100)
    dec.feed(b'{"b"')
    with pytest.raises(BadPayload, match="not valid JSON"):
        dec.close()


def test_gzip_bomb_stops_at_the_limit_without_inflating_whole() -> None:
    bomb = gzip.compress(b"\0" * (64 << 20))  # 64 MiB of zeros in ~64 KB
    assert len(bomb) < 100_000
    dec = BodyDecoder("gzip", limit=1 << 20)
    seen = 0
    with pytest.raises(LimitExceeded):
        for i in range(0, len(bomb), 16_384):
            for piece in dec.feed(bomb[i : i + 16_384]):
                assert len(piece) <= BodyDecoder.STEP
                seen += len(piece)
    assert seen <= (1 << 20) + BodyDecoder.STEP


@pytest.mark.parametrize(
    ("encoding", "pack"), [("gzip", gzip.compress), ("deflate", zlib.compress), (None, lambda b: b)]
)
def test_bodies_decode_whole(encoding: str | None, pack: object) -> None:
    body = b'{"ok": true}' * 1000
    dec = BodyDecoder(encoding, limit=1 << 20)
    packed = pack(body)  # type: ignore[operator]
    assert b"".join(dec.feed(packed) + dec.close()) == body


def test_an_encoding_not_asked_for_is_refused() -> None:
    with pytest.raises(BadPayload, match="did not ask for"):
        BodyDecoder("br", limit=10)


def _flat(items: list[SSEEvent | SSERun]) -> list[tuple[str, str, object]]:
    out: list[tuple[str, str, object]] = []
    for it in items:
        if isinstance(it, SSERun):
            out += [
                ("message", ln[6:].decode(), v) for ln, v in zip(it.lines, it.values, strict=True)
            ]
        else:
            try:
                value = it.json()
            except ValueError:
                value = None
            out.append((it.event, it.data, value))
    return out


SSE_CASES = [
    b'data: {"a": 1}\n\ndata: {"b": [2]}\n\n: ping\n\ndata: [DONE]\n\n',
    b'data: {"a": 1}\r\n\r\ndata: {"b": 2}\r\n\r\n',  # CRLF
    b'event: delta\ndata: {"a": 1}\n\ndata: {"b": 2}\n\n',  # a named event
    b'data: {"a":\ndata:  1}\n\ndata: {"b": 2}\n\n',  # one value over two lines
    b'data: {"a": 1}\ndata: {"b": 2}\n\n',  # eager: two events, no blank line between
    b'data: {"a": 1},{"b": 2}\n\ndata: {"c": 3}\n\n',  # not one value
    b'data: {oops\n\ndata: {"c": 3}\n\n',  # not JSON, then a good one
    b'id: 7\ndata: {"a": 1}\n\nerror: {"message": "x"}\n\n',
]


@pytest.mark.parametrize("raw", SSE_CASES)
@pytest.mark.parametrize("step", [1, 5, 1000])
def test_sse_runs_read_exactly_as_eager_events(raw: bytes, step: int) -> None:
    # feed_runs takes a shortcut for runs of one-line events; whatever the input and
    # however it is cut, what it reads must be what the general rules read
    fields = ("error",)
    eager, runs = (
        SSEDecoder(4096, eager=True, fields=fields),
        SSEDecoder(4096, eager=True, fields=fields),
    )
    a: list[SSEEvent] = []
    b: list[SSEEvent | SSERun] = []
    for i in range(0, len(raw), step):
        a += eager.feed(raw[i : i + step])
        b += runs.feed_runs(raw[i : i + step])
    a += eager.close()
    b += runs.close()
    assert _flat(b) == _flat(list(a))


def test_sse_runs_take_a_read_of_one_line_events_together() -> None:
    dec = SSEDecoder(4096, eager=True)
    got = dec.feed_runs(b'data: {"a": 1}\n\ndata: {"b": 2}\n\ndata: [DONE]\n\n')
    assert isinstance(got[0], SSERun)
    assert got[0].lines == [b'data: {"a": 1}', b'data: {"b": 2}']
    assert got[0].values == [{"a": 1}, {"b": 2}]
    assert isinstance(got[1], SSEEvent) and got[1].data == "[DONE]"


def test_sse_runs_refuse_an_event_over_the_limit() -> None:
    dec = SSEDecoder(100, eager=True)
    with pytest.raises(LimitExceeded):
        dec.feed_runs(b'data: {"a": "' + b"x" * 200 + b'"}\n\n')
