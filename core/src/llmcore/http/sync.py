"""The sync transport: httpx, one pooled client per provider.

Holds the rules every call obeys: redirects are returned, never followed; the body is
decompressed here in bounded steps and counted against ``max_response_bytes``; the wait
for the first byte is bounded by ``first_token``, each later silence by ``read``, and the
whole call by ``total`` (checked before every read, so a trickling server cannot stretch
it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Mapping
from typing import Any

from ..errors import ProviderError, ResponseError
from .decoders import BadPayload, BodyDecoder, LimitExceeded
from .failures import TransportFailures
from .limits import ERROR_BODY_BYTES, Limits
from .messages import HTTPRequest, HTTPResponse
from .tls import ssl_context


class SyncAnswer:
    """An answer whose headers are in and whose body is read on demand."""

    def __init__(
        self, transport: SyncTransport, resp: Any, url: str, limits: Limits, started: float
    ) -> None:
        self._t = transport
        self._resp = resp
        self.url = url
        self.status: int = resp.status_code
        # httpx's headers already look names up case-insensitively.
        self.headers: Mapping[str, str] = resp.headers
        self.limits = limits
        self.started = started
        self.deadline = started + limits.total
        self.got_bytes = False

    def pieces(self) -> Generator[bytes, None, None]:
        """The decoded body as it arrives."""
        import httpx

        lim = self.limits
        tmo = self._resp.request.extensions.get("timeout")
        raw = self._resp.iter_raw()
        try:
            body = BodyDecoder(self.headers.get("content-encoding"), lim.max_response_bytes)
            while True:
                left = self.deadline - time.monotonic()
                if left <= 0:
                    raise self._t.fail.deadline(self.url, lim, "total", self.got_bytes)
                if isinstance(tmo, dict):
                    # httpcore reads this dict before every socket read: the next read
                    # may wait no longer than the silence allowed, nor past the deadline.
                    gap = lim.read if self.got_bytes else lim.first_token
                    tmo["read"] = min(gap, left)
                try:
                    data = next(raw)
                except StopIteration:
                    break
                self.got_bytes = True
                yield from body.feed(data)
            yield from body.close()
        except httpx.TimeoutException as exc:
            raise self._t.fail.timeout(self.url, lim, exc, self.got_bytes, self.deadline) from exc
        except httpx.TransportError as exc:
            raise self._t.fail.cut(self.url, exc) from exc
        except LimitExceeded as exc:
            raise self._t.fail.too_large(self.url, exc) from None
        except BadPayload as exc:
            raise self._t.fail.bad_body(self.url, exc) from None

    def read(self) -> bytes:
        return b"".join(self.pieces())

    def read_error(self) -> bytes:
        """The start of an error answer's body (at most ERROR_BODY_BYTES): enough for the
        server's message; a huge or broken error page must not hide the status."""
        out: list[bytes] = []
        size = 0
        pieces = self.pieces()
        try:
            for piece in pieces:
                out.append(piece)
                size += len(piece)
                if size >= ERROR_BODY_BYTES:
                    break
        except ProviderError:
            pass
        finally:
            pieces.close()
        return b"".join(out)[:ERROR_BODY_BYTES]

    def close(self) -> None:
        self._resp.close()


class SyncTransport:
    """Sends :class:`HTTPRequest` values with httpx under a provider's :class:`Limits`."""

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
        self._client: Any = None
        self._timeout: Any = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        """The pooled ``httpx.Client``, made on first use."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import httpx

                    lim = self.limits
                    n = lim.max_connections
                    self._client = httpx.Client(
                        headers=self.headers,
                        verify=ssl_context(self.tls_url),
                        follow_redirects=False,
                        timeout=httpx.Timeout(
                            connect=lim.connect,
                            read=lim.first_token,
                            write=lim.write,
                            pool=lim.pool,
                        ),
                        limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
                    )
        return self._client

    def open(self, req: HTTPRequest, url: str) -> SyncAnswer:
        """Send ``req`` to ``url``; the answer's headers are in, its body not yet read."""
        import httpx

        lim = self.limits.for_call(req.timeout)
        started = time.monotonic()
        client = self.client
        timeout = self._httpx_timeout(lim)
        try:
            request = client.build_request(
                req.method, url, content=req.body_bytes(), headers=req.headers, timeout=timeout
            )
            resp = client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise self.fail.timeout(url, lim, exc, False, started + lim.total) from exc
        except httpx.ConnectError as exc:
            raise self.fail.unreachable(url, exc) from exc
        except httpx.TransportError as exc:
            raise self.fail.cut(url, exc, during="while answering") from exc
        return SyncAnswer(self, resp, url, lim, started)

    def _httpx_timeout(self, lim: Limits) -> Any:
        """httpx's timeouts for one call (the wait for the head is first_token); made once
        for the provider's own limits, since building one costs a few µs per call."""
        if lim is self.limits and self._timeout is not None:
            return self._timeout
        import httpx

        t = httpx.Timeout(
            connect=min(lim.connect, lim.total),
            read=min(lim.first_token, lim.total),
            write=lim.write,
            pool=lim.pool,
        )
        if lim is self.limits:
            self._timeout = t
        return t

    def send(self, req: HTTPRequest, url: str) -> HTTPResponse:
        """Send ``req`` and read the whole (bounded) answer."""
        answer = self.open(req, url)
        try:
            body = answer.read() if answer.status < 400 else answer.read_error()
        finally:
            answer.close()
        return HTTPResponse(answer.status, answer.headers, body, url)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


__all__ = ["ResponseError", "SyncAnswer", "SyncTransport"]
