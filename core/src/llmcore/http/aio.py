"""The async transport: aiohttp (it keeps its throughput at ~100 requests in flight, where
``httpx.AsyncClient`` loses most of it: see ``bench/bench_async.py``).

Same rules as :mod:`.sync`: no redirect followed, decompression here in bounded steps,
``first_token`` / ``read`` / ``total`` deadlines. One ``ClientSession`` per provider and
event loop (a session is bound to the loop it was made on).
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from ..errors import ProviderError
from .decoders import BadPayload, BodyDecoder, LimitExceeded
from .failures import TransportFailures
from .limits import ERROR_BODY_BYTES, Limits
from .messages import HTTPRequest, HTTPResponse
from .tls import ssl_context

if sys.version_info >= (3, 11):
    from asyncio import timeout as _timeout
else:  # aiohttp depends on async-timeout before 3.11
    from async_timeout import timeout as _timeout  # type: ignore[import-not-found,no-redef,unused-ignore]


class AsyncAnswer:
    """An answer whose headers are in and whose body is read on demand."""

    def __init__(
        self, transport: AsyncTransport, resp: Any, url: str, limits: Limits, started: float
    ) -> None:
        self._t = transport
        self._resp = resp
        self.url = url
        self.status: int = resp.status
        # aiohttp's headers already look names up case-insensitively.
        self.headers: Mapping[str, str] = resp.headers
        self.limits = limits
        self.deadline = started + limits.total
        self.got_bytes = False

    async def pieces(self) -> AsyncGenerator[bytes, None]:
        import aiohttp

        lim = self.limits
        content = self._resp.content
        # aiohttp bounds each socket read by max(first_token, read) and the call by total;
        # a read gets its own, tighter timer only when its limit is the smaller one (a
        # timer per read costs ~5 µs, paid on every chunk of every stream otherwise).
        sock_read = max(lim.first_token, lim.read)
        try:
            body = BodyDecoder(self.headers.get("content-encoding"), lim.max_response_bytes)
            while True:
                left = self.deadline - time.monotonic()
                if left <= 0:
                    raise self._t.fail.deadline(self.url, lim, "total", self.got_bytes)
                gap = lim.read if self.got_bytes else lim.first_token
                if gap < sock_read:
                    async with _timeout(min(gap, left)):
                        data = await content.readany()
                else:
                    data = await content.readany()
                if not data:
                    break
                self.got_bytes = True
                for piece in body.feed(data):
                    yield piece
            for piece in body.close():
                yield piece
        except asyncio.TimeoutError as exc:
            raise self._t.fail.timeout(self.url, lim, exc, self.got_bytes, self.deadline) from exc
        except aiohttp.ClientError as exc:
            raise self._t.fail.cut(self.url, exc) from exc
        except LimitExceeded as exc:
            raise self._t.fail.too_large(self.url, exc) from None
        except BadPayload as exc:
            raise self._t.fail.bad_body(self.url, exc) from None

    async def read(self) -> bytes:
        lim = self.limits
        size = self.headers.get("content-length")
        encoding = self.headers.get("content-encoding")
        if (
            size is not None
            and size.isdigit()
            and int(size) <= lim.max_response_bytes
            and encoding in (None, "", "identity")
            and lim.first_token == lim.read
        ):
            # The common answer: plain, of a known size within the limit. aiohttp reads
            # exactly that many bytes under its socket-read and total timeouts, so the
            # piecewise loop (an async generator, a few µs per answer) is not needed.
            return await self._read_whole()
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

    async def _read_whole(self) -> bytes:
        import aiohttp

        try:
            data: bytes = await self._resp.read()
        except asyncio.TimeoutError as exc:
            raise self._t.fail.timeout(self.url, self.limits, exc, True, self.deadline) from exc
        except aiohttp.ClientError as exc:
            raise self._t.fail.cut(self.url, exc) from exc
        self.got_bytes = True
        return data

    def close(self) -> None:
        self._resp.release()


class AsyncTransport:
    """Sends :class:`HTTPRequest` values with aiohttp under a provider's :class:`Limits`."""

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
        self._sessions: dict[Any, Any] = {}  # event loop -> aiohttp.ClientSession
        self._lock = threading.Lock()
        self._timeouts: dict[tuple[float, float], Any] = {}

    def session(self) -> Any:
        """The ``aiohttp.ClientSession`` of the running event loop; sessions of loops that
        have since closed are dropped when a new one is made."""
        loop = asyncio.get_running_loop()
        s = self._sessions.get(loop)
        if s is not None and not s.closed:
            return s
        import aiohttp

        with self._lock:
            for old in [lp for lp in self._sessions if lp.is_closed()]:
                _abandon(self._sessions.pop(old))
            s = aiohttp.ClientSession(
                headers=self.headers,
                auto_decompress=False,
                connector=aiohttp.TCPConnector(
                    limit=self.limits.max_connections, ssl=ssl_context(self.tls_url)
                ),
            )
            self._sessions[loop] = s
        return s

    def _client_timeout(self, lim: Limits) -> Any:
        """aiohttp's timeouts for one call: connect bounds, and ``total`` for the whole call
        (reading the body included), and each socket read; the first-token and read
        silences are bounded exactly per read of the body."""
        key = (lim.total, max(lim.first_token, lim.read))
        t = self._timeouts.get(key)
        if t is None:
            import aiohttp

            # aiohttp has no write timeout; ``connect`` covers waiting for a pooled
            # connection plus connecting, ``sock_connect`` the TCP connect alone.
            t = aiohttp.ClientTimeout(
                total=lim.total,
                connect=lim.pool + lim.connect,
                sock_connect=lim.connect,
                sock_read=key[1],
            )
            if len(self._timeouts) < 16:
                self._timeouts[key] = t
        return t

    async def open(self, req: HTTPRequest, url: str) -> AsyncAnswer:
        import aiohttp

        lim = self.limits.for_call(req.timeout)
        started = time.monotonic()
        session = self.session()
        try:
            if lim.first_token < lim.read:
                # aiohttp's socket-read timeout is the larger of the two: hold the wait for
                # the answer's head to first_token here.
                async with _timeout(min(lim.first_token + lim.connect + lim.pool, lim.total)):
                    resp = await session.request(
                        req.method,
                        url,
                        data=req.body_bytes(),
                        headers=req.headers,
                        allow_redirects=False,
                        timeout=self._client_timeout(lim),
                    )
            else:
                resp = await session.request(
                    req.method,
                    url,
                    data=req.body_bytes(),
                    headers=req.headers,
                    allow_redirects=False,
                    timeout=self._client_timeout(lim),
                )
        except asyncio.TimeoutError as exc:
            raise self.fail.timeout(url, lim, exc, False, started + lim.total) from exc
        except aiohttp.ClientConnectorError as exc:
            raise self.fail.unreachable(url, exc) from exc
        except aiohttp.ClientError as exc:
            raise self.fail.cut(url, exc, during="while answering") from exc
        return AsyncAnswer(self, resp, url, lim, started)

    async def send(self, req: HTTPRequest, url: str) -> HTTPResponse:
        answer = await self.open(req, url)
        try:
            body = await answer.read() if answer.status < 400 else await answer.read_error()
        finally:
            answer.close()
        return HTTPResponse(answer.status, answer.headers, body, url)

    def close(self) -> None:
        with self._lock:
            for s in self._sessions.values():
                _abandon(s)
            self._sessions.clear()

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            s = self._sessions.pop(loop, None)
        if s is not None:
            await s.close()
        self.close()


def _abandon(session: Any) -> None:
    """Release a session without awaiting (its loop may be gone): close its sockets."""
    try:
        connector = session.connector
        if connector is not None and not connector.closed:
            connector._close()  # sync part of close(); avoids an un-awaited coroutine
        session.detach()
    except Exception:  # closing is best effort; the sockets die with the loop anyway
        pass
