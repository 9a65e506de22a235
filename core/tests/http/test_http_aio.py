"""The async transport's connection handling, against real loopback servers: keep-alive
reuse, a kept-alive connection the server closed, half-read answers, the pool's limit,
bounded buffering, and cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from llmcore.errors import ProviderConnectionError, ProviderTimeoutError
from llmcore.http.aio import HIGH_WATER, AsyncTransport
from llmcore.http.limits import Limits
from llmcore.http.messages import HTTPRequest

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, dict[str, Any]], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head


async def serve(handler: Handler) -> tuple[asyncio.AbstractServer, str, dict[str, Any]]:
    state: dict[str, Any] = {"accepts": 0, "closed": asyncio.Event()}

    async def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        state["accepts"] += 1
        try:
            await handler(r, w, state)
        except (ConnectionError, asyncio.IncompleteReadError):
            state["closed"].set()
        finally:
            w.close()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/v1/x", state


def transport(**kw: Any) -> AsyncTransport:
    return AsyncTransport("t", Limits(**kw), {"Content-Type": "application/json"})


REQ = HTTPRequest("POST", "/x", json={"a": 1})


async def keep_answering(r: asyncio.StreamReader, w: asyncio.StreamWriter, st: Any) -> None:
    while True:
        await read_request(r)
        w.write(OK)
        await w.drain()


def test_connections_are_kept_alive_and_reused() -> None:
    async def main() -> int:
        server, url, st = await serve(keep_answering)
        t = transport()
        for _ in range(5):
            resp = await t.send(REQ, url)
            assert resp.status == 200 and resp.body == b"{}"
        await t.aclose()
        server.close()
        return int(st["accepts"])

    assert asyncio.run(main()) == 1


def test_a_kept_alive_connection_closed_by_the_server_is_not_reused() -> None:
    async def answer_once(r: asyncio.StreamReader, w: asyncio.StreamWriter, st: Any) -> None:
        await read_request(r)
        w.write(OK)
        await w.drain()  # then the server closes the idle connection (its keep-alive ran out)

    async def main() -> int:
        server, url, st = await serve(answer_once)
        t = transport()
        for _ in range(3):
            assert (await t.send(REQ, url)).body == b"{}"
            await asyncio.sleep(0.1)
        await t.aclose()
        server.close()
        return int(st["accepts"])

    assert asyncio.run(main()) == 3


def test_a_connection_broken_before_the_answer_is_an_error_never_a_silent_resend() -> None:
    async def drop_second(r: asyncio.StreamReader, w: asyncio.StreamWriter, st: Any) -> None:
        await read_request(r)
        w.write(OK)
        await w.drain()
        await read_request(r)  # took the request; closes without answering
        st["dropped"] = st.get("dropped", 0) + 1

    async def main() -> tuple[int, int]:
        server, url, st = await serve(drop_second)
        t = transport()
        assert (await t.send(REQ, url)).body == b"{}"
        with pytest.raises(ProviderConnectionError, match="closed the connection"):
            await t.send(REQ, url)
        await t.aclose()
        server.close()
        return int(st["accepts"]), int(st["dropped"])

    assert asyncio.run(main()) == (1, 1)


def test_a_half_read_answer_never_goes_back_to_the_pool() -> None:
    big = b"x" * (4 * HIGH_WATER)  # cannot all have arrived when the first piece is read

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, st: Any) -> None:
        while True:
            await read_request(r)
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(big) + big)
            await w.drain()

    async def main() -> int:
        server, url, st = await serve(handler)
        t = transport()
        answer = await t.open(REQ, url)
        pieces = answer.pieces()
        await pieces.__anext__()
        await pieces.aclose()
        answer.close()
        assert (await t.send(REQ, url)).status == 200
        await t.aclose()
        server.close()
        return int(st["accepts"])

    assert asyncio.run(main()) == 2


def test_the_pool_limit_waits_then_fails_with_the_pool_timeout() -> None:
    async def slow(r: asyncio.StreamReader, w: asyncio.StreamWriter, st: Any) -> None:
        await read_request(r)
        await asyncio.sleep(5)

    async def main() -> None:
        server, url, _ = await serve(slow)
        t = AsyncTransport(
            "t", Limits(pool=0.2, first_token=3, max_connections=1), {"Content-Type": "x"}
        )
        first = asyncio.ensure_future(t.send(REQ, url))
        await asyncio.sleep(0.05)
        with pytest.raises(ProviderTimeoutError, match=r"free connection.*timeout\.pool"):
            await t.send(REQ, url)
        first.cancel()
        await t.aclose()
        server.close()

    asyncio.run(main())


def test_an_unread_fast_body_is_buffered_up_to_the_high_water_mark_only() -> None:
    size = 64 * 1024 * 1024

    async def flood(r: asyncio.StreamReader, w: asyncio.StreamWriter, st: Any) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        chunk = b"y" * (1024 * 1024)
        for _ in range(size // len(chunk)):
            w.write(chunk)
            await w.drain()

    async def main() -> tuple[int, int]:
        server, url, _ = await serve(flood)
        t = transport(max_response_bytes=size * 2)
        answer = await t.open(REQ, url)
        await asyncio.sleep(0.5)  # the server keeps sending; nobody reads
        held = answer._conn.buffered
        got = 0
        async for piece in answer.pieces():
            got += len(piece)
        answer.close()
        await t.aclose()
        server.close()
        return held, got

    held, got = asyncio.run(main())
    assert got == size
    assert held <= HIGH_WATER + 512 * 1024, held


def test_a_cancelled_call_closes_its_connection() -> None:
    async def silent(r: asyncio.StreamReader, w: asyncio.StreamWriter, st: Any) -> None:
        await read_request(r)
        await r.read()  # returns when the client closes
        st["closed"].set()

    async def main() -> None:
        server, url, st = await serve(silent)
        t = transport()
        call = asyncio.ensure_future(t.send(REQ, url))
        await asyncio.sleep(0.1)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await asyncio.wait_for(st["closed"].wait(), 5)
        assert t.pool().open == 0
        await t.aclose()
        server.close()

    asyncio.run(main())


def test_refused_and_protocol_errors_are_connection_errors() -> None:
    async def garbage(r: asyncio.StreamReader, w: asyncio.StreamWriter, st: Any) -> None:
        await read_request(r)
        w.write(b"220 smtp.example ESMTP\r\n\r\n")
        await w.drain()

    async def main() -> None:
        server, url, _ = await serve(garbage)
        t = transport()
        with pytest.raises(ProviderConnectionError, match="status line"):
            await t.send(REQ, url)
        server.close()
        await server.wait_closed()
        with pytest.raises(ProviderConnectionError, match="not reachable"):
            await t.send(REQ, url)
        await t.aclose()

    asyncio.run(main())


def test_at_the_limit_an_idle_connection_to_another_server_makes_room() -> None:
    """Replicas share one pool: a connection left idle to one must not block the next."""

    async def main() -> None:
        a, url_a, _ = await serve(keep_answering)
        b, url_b, _ = await serve(keep_answering)
        t = AsyncTransport("t", Limits(pool=0.5, max_connections=1), {"Content-Type": "x"})
        assert (await t.send(REQ, url_a)).status == 200  # one connection, now idle
        assert (await t.send(REQ, url_b)).status == 200  # no wait for timeout.pool
        assert (await t.send(REQ, url_a)).status == 200
        assert t.pool().open == 1
        await t.aclose()
        a.close()
        b.close()

    asyncio.run(main())
