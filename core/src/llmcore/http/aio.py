"""The async transport: HTTP/1.1 over asyncio's own sockets, one connection pool per
provider and event loop.

Why not aiohttp's client here: with 100 requests in flight, ``ClientSession.request``
(request and response objects, cookie jar, tracing, timers, payload wrappers) cost ~130 µs
of CPU per request on the benchmark machine; this transport costs a fraction of that
(``bench/bench_async.py`` measures both in one run), and that difference is what lets the
router, hooks and metrics fit in the budget. The protocol is the pure code in :mod:`.h1`;
what is here only moves bytes and waits.

Same rules as :mod:`.sync`: no redirect followed (an answer is returned as it is), the
body decompressed in bounded steps and counted against ``max_response_bytes``, the wait for
the head and the first body bytes bounded by ``first_token``, every later silence by
``read``, and the whole call by ``total``. Reading stops (the socket is paused) while
more than :data:`HIGH_WATER` bytes wait for the caller, so memory stays bounded whatever
the server sends. Proxies are not used (as with aiohttp's default ``trust_env=False``).
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
import urllib.parse
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from ..errors import ProviderError
from .decoders import BadPayload, BodyDecoder, LimitExceeded
from .failures import TransportFailures
from .h1 import ProtocolError, ResponseParser, header_line, request_bytes
from .limits import ERROR_BODY_BYTES, Limits
from .messages import Headers, HTTPRequest, HTTPResponse
from .tls import ssl_context

#: Body bytes received but not yet taken by the caller before the socket is paused.
HIGH_WATER = 256 * 1024
#: How long an idle pooled connection is kept.
KEEPALIVE_EXPIRY = 5.0


class ConnectTimeout(Exception):
    """Connecting took longer than ``timeout.connect``."""


class PoolTimeout(Exception):
    """No pooled connection was free within ``timeout.pool``."""


class ReadTimeout(Exception):
    """The server was silent longer than allowed."""


class Disconnected(Exception):
    """The connection closed or broke."""


def _expire(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_exception(ReadTimeout())


class Connection(asyncio.Protocol):
    """One keep-alive connection: feeds what arrives to the current answer's parser."""

    def __init__(self, pool: Pool, origin: str) -> None:
        self.pool = pool
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser: ResponseParser | None = None
        self.pieces: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.waiter: asyncio.Future[None] | None = None
        self.error: BaseException | None = None
        self.closed = False
        self.paused = False
        self.got = False  # any byte of the current answer arrived
        self.idle_since = 0.0

    # -- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if parser is None:  # bytes nobody asked for: this connection cannot be trusted
            self.abort()
            return
        self.got = True
        try:
            pieces = parser.feed(data)
        except ProtocolError as exc:
            self.error = exc
            self.abort()
            self._wake()
            return
        if pieces:
            for p in pieces:
                self.pieces.append(p)
                self.buffered += len(p)
            if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
                self.paused = True
                self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        parser = self.parser
        if parser is not None and not parser.done:
            if not self.got:
                self.error = Disconnected("the server closed the connection before answering")
            else:
                try:
                    parser.eof()
                except ProtocolError as exc:
                    self.error = exc
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        parser = self.parser
        if parser is not None and not parser.done and self.error is None:
            self.error = exc or Disconnected("the server closed the connection")
        self._wake()

    def _wake(self) -> None:
        w = self.waiter
        if w is not None:
            self.waiter = None
            if not w.done():
                w.set_result(None)

    # -- the caller's side ---------------------------------------------------------------
    async def wait(self, until: float) -> None:
        """Wait for more of the answer (or its end, or an error) until loop time ``until``."""
        loop = self.pool.loop
        fut = loop.create_future()
        self.waiter = fut
        timer = loop.call_at(until, _expire, fut)
        try:
            await fut
        finally:
            timer.cancel()
            self.waiter = None

    def take(self) -> bytes:
        """The body bytes waiting, as one piece (resumes reading if it was paused)."""
        pieces = self.pieces
        data = pieces.popleft() if len(pieces) == 1 else b"".join(pieces)
        pieces.clear()
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    def usable(self, now: float) -> bool:
        t = self.transport
        return (
            not self.closed
            and t is not None
            and not t.is_closing()
            and now - self.idle_since < KEEPALIVE_EXPIRY
        )

    def abort(self) -> None:
        self.closed = True
        t = self.transport
        if t is not None:
            try:
                t.abort()
            except RuntimeError:  # its loop is closed: the socket dies with it
                pass


class Pool:
    """The connections of one transport on one event loop (at most ``max_connections``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limits: Limits, tls_url: str) -> None:
        self.loop = loop
        self.limits = limits
        self.tls_url = tls_url
        self.idle: dict[str, list[Connection]] = {}
        self.open = 0
        self.slots: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(
        self, origin: str, host: str, port: int, tls: bool, lim: Limits
    ) -> Connection:
        """A connection to ``origin``: the most recently used idle one, or a new one."""
        loop = self.loop
        idle = self.idle.get(origin)
        now = loop.time()
        while idle:
            conn = idle.pop()
            if conn.usable(now):
                return conn
            conn.abort()
            self.open -= 1
        if self.open >= self.limits.max_connections and not self._evict_idle():
            await self._wait_slot(lim)
            return await self.acquire(origin, host, port, tls, lim)
        self.open += 1
        try:
            conn = await self._connect(origin, host, port, tls, lim)
        except BaseException:
            self.open -= 1
            self._free_slot()
            raise
        return conn

    def _evict_idle(self) -> bool:
        """At the limit, close the longest-idle connection to another server (several
        replicas share one pool): a slot held by an idle connection is free to take."""
        oldest: list[Connection] | None = None
        for conns in self.idle.values():
            if conns and (oldest is None or conns[0].idle_since < oldest[0].idle_since):
                oldest = conns
        if oldest is None:
            return False
        oldest.pop(0).abort()
        self.open -= 1
        return True

    async def _connect(
        self, origin: str, host: str, port: int, tls: bool, lim: Limits
    ) -> Connection:
        loop = self.loop
        fut = loop.create_task(
            loop.create_connection(
                lambda: Connection(self, origin),
                host,
                port,
                ssl=ssl_context(self.tls_url) if tls else None,
                server_hostname=host if tls else None,
            )
        )
        try:
            done, _ = await asyncio.wait({fut}, timeout=lim.connect)
        except BaseException:
            fut.cancel()
            raise
        if not done:
            fut.cancel()
            raise ConnectTimeout(f"no connection within {lim.connect:g}s")
        conn: Connection = fut.result()[1]
        return conn

    async def _wait_slot(self, lim: Limits) -> None:
        fut = self.loop.create_future()
        self.slots.append(fut)
        timer = self.loop.call_later(lim.pool, _expire, fut)
        try:
            await fut
        except ReadTimeout:
            raise PoolTimeout(f"no free connection within {lim.pool:g}s") from None
        finally:
            timer.cancel()
            if fut in self.slots:
                self.slots.remove(fut)

    def _free_slot(self) -> None:
        while self.slots:
            fut = self.slots.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def release(self, conn: Connection, reuse: bool) -> None:
        """The answer on ``conn`` is over: keep it for the next call, or close it."""
        conn.parser = None
        if reuse and not conn.closed:
            conn.idle_since = self.loop.time()
            self.idle.setdefault(conn.origin, []).append(conn)
            self._free_slot()
            return
        conn.abort()
        self.open -= 1
        self._free_slot()

    def close(self) -> None:
        for conns in self.idle.values():
            for c in conns:
                c.abort()
        self.idle.clear()
        self.open = 0


class _Target:
    """What is derived once from a URL: where to connect, and the request's fixed bytes."""

    __slots__ = ("head", "host", "origin", "path", "port", "tls")

    def __init__(self, url: str, base_head: bytes) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.origin = f"{parts.scheme}://{self.host}:{self.port}"
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        netloc = parts.netloc.rpartition("@")[2]
        self.head = b"Host: " + netloc.encode("idna") + b"\r\n" + base_head


class AsyncAnswer:
    """An answer whose head is in and whose body is read on demand."""

    def __init__(
        self,
        transport: AsyncTransport,
        conn: Connection,
        parser: ResponseParser,
        url: str,
        limits: Limits,
        deadline: float,
    ) -> None:
        self._t = transport
        self._conn = conn
        self._parser = parser
        self.url = url
        self.status: int = parser.status
        self.headers: Mapping[str, str] = Headers(parser.headers)
        self.limits = limits
        self.deadline = deadline  # on the event loop's clock
        self.got_bytes = False
        self._released = False

    async def _next(self) -> bytes:
        """The next body bytes as they arrive; ``b""`` at the end."""
        conn = self._conn
        lim = self.limits
        while True:
            if conn.pieces:
                self.got_bytes = True
                return conn.take()
            if conn.error is not None:
                raise conn.error
            if self._parser.done:
                return b""
            if conn.closed:
                raise Disconnected("the server closed the connection mid-answer")
            now = conn.pool.loop.time()
            if now >= self.deadline:
                raise self._t.fail.deadline(self.url, lim, "total", self.got_bytes)
            gap = lim.read if self.got_bytes else lim.first_token
            await conn.wait(min(now + gap, self.deadline))

    async def pieces(self) -> AsyncGenerator[bytes, None]:
        lim = self.limits
        try:
            body = BodyDecoder(self.headers.get("content-encoding"), lim.max_response_bytes)
            while True:
                data = await self._next()
                if not data:
                    break
                for piece in body.feed(data):
                    yield piece
            for piece in body.close():
                yield piece
        except ReadTimeout as exc:
            raise self._t.fail.timeout(self.url, lim, exc, self.got_bytes, self._mono()) from exc
        except (ProtocolError, Disconnected, OSError) as exc:
            raise self._t.fail.cut(self.url, exc) from exc
        except LimitExceeded as exc:
            raise self._t.fail.too_large(self.url, exc) from None
        except BadPayload as exc:
            raise self._t.fail.bad_body(self.url, exc) from None

    def _mono(self) -> float:
        """The deadline on ``time.monotonic``'s clock (what the failure check reads)."""
        return time.monotonic() + (self.deadline - self._conn.pool.loop.time())

    async def read(self) -> bytes:
        conn = self._conn
        encoding = self.headers.get("content-encoding")
        if self._parser.done and conn.error is None and encoding in (None, "", "identity"):
            # The common answer: all of it arrived with the head, uncompressed.
            data = conn.take() if conn.pieces else b""
            if len(data) > self.limits.max_response_bytes:
                raise self._t.fail.too_large(
                    self.url, LimitExceeded("the answer", self.limits.max_response_bytes)
                )
            self.got_bytes = True
            return data
        return b"".join([p async for p in self.pieces()])

    async def read_error(self) -> bytes:
        """The start of an error answer's body (at most ERROR_BODY_BYTES): enough for the
        server's message; a huge or broken error page must not hide the status."""
        out: list[bytes] = []
        size = 0
        pieces = self.pieces()
        try:
            async for piece in pieces:
                out.append(piece)
                size += len(piece)
                if size >= ERROR_BODY_BYTES:
                    break
        except ProviderError:
            pass
        finally:
            await pieces.aclose()
        return b"".join(out)[:ERROR_BODY_BYTES]

    def close(self) -> None:
        """Give the connection back (only when the whole answer was read and it may be
        kept alive; otherwise it is closed, so no half-read answer is ever reused)."""
        if self._released:
            return
        self._released = True
        conn = self._conn
        p = self._parser
        reuse = p.done and p.keep_alive and not conn.pieces and conn.error is None
        conn.pool.release(conn, reuse)


class AsyncTransport:
    """Sends :class:`HTTPRequest` values under a provider's :class:`Limits`."""

    def __init__(
        self,
        name: str,
        limits: Limits,
        headers: Mapping[str, str],
        *,
        tls_url: str = "",
        unreachable_hint: str | None = None,
        unreachable: Any = None,
    ) -> None:
        self.name = name
        self.limits = limits
        self.headers = {**headers, "Accept-Encoding": "gzip, deflate"}
        self.tls_url = tls_url
        self.fail = TransportFailures(name, unreachable_hint, unreachable)
        self._pools: dict[Any, Pool] = {}  # event loop -> its pool
        self._lock = threading.Lock()
        self._targets: dict[str, _Target] = {}
        self._base_head = b"".join(header_line(k, v) for k, v in self.headers.items())

    def pool(self) -> Pool:
        """The connection pool of the running event loop; pools of loops that have since
        closed are dropped when a new one is made."""
        loop = asyncio.get_running_loop()
        p = self._pools.get(loop)
        if p is not None:
            return p
        with self._lock:
            for old in [lp for lp in self._pools if lp.is_closed()]:
                self._pools.pop(old).close()
            p = self._pools[loop] = Pool(loop, self.limits, self.tls_url)
        return p

    def _target(self, url: str) -> _Target:
        t = self._targets.get(url)
        if t is None:
            t = _Target(url, self._base_head)
            if len(self._targets) < 256:  # a provider calls a handful of URLs
                self._targets[url] = t
        return t

    async def open(self, req: HTTPRequest, url: str) -> AsyncAnswer:
        """Send ``req`` to ``url``; the answer's head is in, its body not yet read."""
        lim = self.limits.for_call(req.timeout)
        pool = self.pool()
        started = pool.loop.time()
        deadline = started + lim.total
        try:
            target = self._target(url)
            data = request_bytes(
                req.method,
                target.path,
                target.head,
                req.headers.items() if req.headers else None,
                req.body_bytes(),
            )
        except ValueError as exc:
            raise self.fail.unreachable(url, exc) from exc
        try:
            conn = await pool.acquire(target.origin, target.host, target.port, target.tls, lim)
        except (ConnectTimeout, PoolTimeout) as exc:
            raise self.fail.timeout(url, lim, exc, False, time.monotonic() + lim.total) from exc
        except (OSError, asyncio.TimeoutError) as exc:
            raise self.fail.unreachable(url, exc) from exc
        # No silent resend when a connection breaks before the answer (even a kept-alive
        # one): the server may have taken the request; the router decides about a retry,
        # and the attempt is on record.
        try:
            return await self._exchange(conn, data, req, url, lim, deadline)
        except Disconnected as exc:
            raise self.fail.cut(url, exc, during="while answering") from exc

    async def _exchange(
        self,
        conn: Connection,
        data: bytes,
        req: HTTPRequest,
        url: str,
        lim: Limits,
        deadline: float,
    ) -> AsyncAnswer:
        pool = conn.pool
        parser = ResponseParser(no_body=req.method == "HEAD")
        conn.parser = parser
        conn.got = False
        conn.error = None
        ok = False
        try:
            if conn.closed or conn.transport is None:
                raise Disconnected("the connection was closed")
            conn.transport.write(data)
            until = min(pool.loop.time() + lim.first_token, deadline)
            while not parser.has_head:
                if conn.error is not None:
                    err = conn.error
                    if isinstance(err, ProtocolError):
                        raise self.fail.cut(url, err, during="while answering") from err
                    raise Disconnected(str(err) or type(err).__name__) from err
                if conn.closed:
                    raise Disconnected("the server closed the connection")
                await conn.wait(until)
            ok = True
        except ReadTimeout as exc:
            raise self.fail.timeout(
                url, lim, exc, False, time.monotonic() + (deadline - pool.loop.time())
            ) from exc
        finally:
            if not ok:
                pool.release(conn, False)
        return AsyncAnswer(self, conn, parser, url, lim, deadline)

    async def send(self, req: HTTPRequest, url: str) -> HTTPResponse:
        answer = await self.open(req, url)
        try:
            body = await answer.read() if answer.status < 400 else await answer.read_error()
        finally:
            answer.close()
        return HTTPResponse(answer.status, answer.headers, body, url)

    def close(self) -> None:
        with self._lock:
            for p in self._pools.values():
                p.close()
            self._pools.clear()

    async def aclose(self) -> None:
        self.close()
