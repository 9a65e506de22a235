"""The HTTP/1.1 response parser and request encoder (pure code, no sockets)."""

from __future__ import annotations

import pytest
from llmcore.http.h1 import (
    MAX_CHUNK_LINE,
    MAX_HEAD,
    ProtocolError,
    ResponseParser,
    header_line,
    request_bytes,
)

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"


def feed_all(p: ResponseParser, data: bytes, step: int) -> bytes:
    out = b""
    for i in range(0, len(data), step):
        out += b"".join(p.feed(data[i : i + step]))
    return out


@pytest.mark.parametrize("step", [1, 2, 3, 7, 64, 10_000])
def test_content_length_body_in_any_split(step: int) -> None:
    raw = HEAD + b"Content-Length: 11\r\n\r\nhello world"
    p = ResponseParser()
    assert feed_all(p, raw, step) == b"hello world"
    assert p.done and p.status == 200 and p.keep_alive and not p.extra
    assert p.headers["content-type"] == "application/json"


@pytest.mark.parametrize("step", [1, 3, 5, 10_000])
def test_chunked_body_with_extensions_and_trailers(step: int) -> None:
    raw = (
        HEAD
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + b"5;name=x\r\nhello\r\n"
        + b"6\r\n world\r\n"
        + b"0\r\nX-Trailer: 1\r\n\r\n"
    )
    p = ResponseParser()
    assert feed_all(p, raw, step) == b"hello world"
    assert p.done and p.keep_alive


def test_body_until_close_is_not_kept_alive() -> None:
    p = ResponseParser()
    assert p.feed(HEAD + b"\r\nabc") == [b"abc"]
    assert p.feed(b"def") == [b"def"]
    assert not p.done
    assert p.eof() == [] and p.done
    assert not p.keep_alive


def test_interim_answers_are_skipped() -> None:
    p = ResponseParser()
    out = p.feed(b"HTTP/1.1 100 Continue\r\n\r\n" + HEAD + b"Content-Length: 2\r\n\r\nok")
    assert out == [b"ok"] and p.status == 200 and p.done


def test_head_request_and_204_have_no_body() -> None:
    p = ResponseParser(no_body=True)
    p.feed(HEAD + b"Content-Length: 100\r\n\r\n")
    assert p.done
    q = ResponseParser()
    q.feed(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert q.done and q.status == 204


def test_connection_close_and_http10() -> None:
    p = ResponseParser()
    p.feed(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    assert p.done and not p.keep_alive
    q = ResponseParser()
    q.feed(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert q.done and not q.keep_alive


def test_bytes_after_the_message_forbid_reuse() -> None:
    p = ResponseParser()
    p.feed(HEAD + b"Content-Length: 2\r\n\r\nokSURPRISE")
    assert p.done and p.extra and not p.keep_alive


def test_bare_lf_heads_are_read() -> None:
    p = ResponseParser()
    assert p.feed(b"HTTP/1.1 201 Created\nContent-Length: 1\n\nx") == [b"x"]
    assert p.status == 201


def test_a_stream_of_many_chunks_in_every_split() -> None:
    # an SSE answer as servers send it: one event per chunk, the whole of it in one read
    # or cut anywhere (a size line, a chunk's data or its CRLF split between two reads)
    events = [b'data: {"n": %d}\n\n' % i for i in range(12)]
    body = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"
    raw = HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + body
    for step in (1, 2, 5, 13, 64, len(raw)):
        p = ResponseParser()
        assert feed_all(p, raw, step) == b"".join(events), step
        assert p.done and p.keep_alive and not p.extra
    for cut in range(len(HEAD) + 30, len(raw)):
        p = ResponseParser()
        got = b"".join(p.feed(raw[:cut])) + b"".join(p.feed(raw[cut:]))
        assert got == b"".join(events) and p.done, cut


@pytest.mark.parametrize("step", [1, 4, 10_000])
def test_a_chunk_longer_than_its_size_is_refused(step: int) -> None:
    raw = HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"3\r\nhello\r\n0\r\n\r\n"
    with pytest.raises(ProtocolError, match="longer than its size"):
        feed_all(ResponseParser(), raw, step)


def test_a_cut_answer_is_an_error() -> None:
    p = ResponseParser()
    p.feed(HEAD + b"Content-Length: 10\r\n\r\nabc")
    with pytest.raises(ProtocolError, match="middle of the body"):
        p.eof()
    q = ResponseParser()
    with pytest.raises(ProtocolError, match="before the head"):
        q.eof()


@pytest.mark.parametrize(
    ("raw", "what"),
    [
        (b"SMTP ready\r\n\r\n", "status line"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "content-length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", "content-length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "transfer-encoding"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
    ],
)
def test_malformed_answers_say_what_was_wrong(raw: bytes, what: str) -> None:
    with pytest.raises(ProtocolError, match=what):
        ResponseParser().feed(raw)


def test_an_endless_head_is_refused_at_the_limit_in_linear_time() -> None:
    p = ResponseParser()
    p.feed(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(ProtocolError, match="head is larger"):
        for _ in range(MAX_HEAD // 1000 + 2):
            p.feed(b"X-A: " + b"a" * 995 + b"\r\n")


@pytest.mark.parametrize("step", [1, 1000, MAX_CHUNK_LINE + 10])
def test_an_endless_chunk_size_line_is_refused(step: int) -> None:
    p = ResponseParser()
    p.feed(HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"2\r\nok\r\n")
    with pytest.raises(ProtocolError, match="chunk-size line"):
        feed_all(p, b"1" * (MAX_CHUNK_LINE + 10), step)


def test_a_large_body_in_many_pieces_is_passed_through_not_kept() -> None:
    p = ResponseParser()
    n = 8 * 1024 * 1024
    p.feed(HEAD + b"Content-Length: %d\r\n\r\n" % n)
    piece = b"x" * 65536
    total = 0
    for _ in range(n // len(piece)):
        total += sum(len(b) for b in p.feed(piece))
    assert total == n and p.done
    assert len(p._buf) == 0  # nothing of the body is held by the parser


def test_request_bytes() -> None:
    head = b"Host: h:1\r\nUser-Agent: t\r\n"
    raw = request_bytes("POST", "/v1/x?a=1", head, [("X-Extra", "1")], b"{}")
    assert raw == (
        b"POST /v1/x?a=1 HTTP/1.1\r\nHost: h:1\r\nUser-Agent: t\r\nX-Extra: 1\r\n"
        b"Content-Length: 2\r\n\r\n{}"
    )
    assert request_bytes("GET", "/", head, None, None).endswith(b"User-Agent: t\r\n\r\n")


@pytest.mark.parametrize(("name", "value"), [("X", "a\r\nEvil: 1"), ("X\nY", "v"), ("A:B", "v")])
def test_header_injection_is_refused(name: str, value: str) -> None:
    with pytest.raises(ValueError, match="invalid HTTP header"):
        header_line(name, value)
