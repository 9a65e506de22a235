"""The sync transport: httpx's connection layer (httpcore), one pool per provider.

Why httpcore and not ``httpx.Client``: the client's per-request machinery (URL merging,
cookies, auth flow, event hooks, header models) cost ~190 µs a call on the benchmark
machine, more than all of llmcore's own work; the pool underneath is the same one
``httpx.Client`` drives (see ``bench/bench_core.py``). What the client did that matters
here is done here instead: ``Host``/``Content-Length`` headers, proxies from the
environment (``HTTP(S)_PROXY``/``NO_PROXY``), keep-alive expiry.

Holds the rules every call obeys: redirects are returned, never followed (httpcore never
follows one); the body is decompressed here in bounded steps and counted against
``max_response_bytes``; the wait for the first byte is bounded by ``first_token``, each
later silence by ``read``, and the whole call by ``total`` (checked before every read, so a
trickling server cannot stretch it).
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Generator, Mapping
from typing import Any

from ..errors import ProviderError, ResponseError
from .decoders import BadPayload, BodyDecoder, LimitExceeded
from .failures import TransportFailures
from .limits import ERROR_BODY_BYTES, Limits
from .messages import Headers, HTTPRequest, HTTPResponse
from .tls import ssl_context

#: How long an idle pooled connection is kept (httpx's default).
KEEPALIVE_EXPIRY = 5.0


def _errors() -> tuple[Any, Any, Any, Any]:
    """httpcore's exception families: (timeouts, connect failures, all transport errors)."""
    import httpcore

    transport = (
        httpcore.NetworkError,
        httpcore.ProtocolError,
        httpcore.ProxyError,
        httpcore.UnsupportedProtocol,
        OSError,
    )
    return httpcore.TimeoutException, httpcore.ConnectError, transport, httpcore


class SyncAnswer:
    """An answer whose headers are in and whose body is read on demand."""

    def __init__(
        self,
        transport: SyncTransport,
        resp: Any,
        url: str,
        limits: Limits,
        started: float,
        timeouts: dict[str, float],
    ) -> None:
        self._t = transport
        self._resp = resp
        self._timeouts = timeouts
        self.url = url
        self.status: int = resp.status
        self.headers: Mapping[str, str] = Headers.from_pairs(resp.headers)
        self.limits = limits
        self.started = started
        self.deadline = started + limits.total
        self.got_bytes = False

    def pieces(self) -> Generator[bytes, None, None]:
        """The decoded body as it arrives."""
        timeout_error, _, transport_error, _ = self._t.errors
        lim = self.limits
        tmo = self._timeouts
        raw = iter(self._resp.stream)
        try:
            body = BodyDecoder(self.headers.get("content-encoding"), lim.max_response_bytes)
            while True:
                left = self.deadline - time.monotonic()
                if left <= 0:
                    raise self._t.fail.deadline(self.url, lim, "total", self.got_bytes)
                # httpcore reads this dict before every socket read: the next read may
                # wait no longer than the silence allowed, nor past the deadline.
                tmo["read"] = min(lim.read if self.got_bytes else lim.first_token, left)
                try:
                    data = next(raw)
                except StopIteration:
                    break
                self.got_bytes = True
                yield from body.feed(data)
            yield from body.close()
        except timeout_error as exc:
            raise self._t.fail.timeout(self.url, lim, exc, self.got_bytes, self.deadline) from exc
        except transport_error as exc:
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
        # A fully read answer gives its connection back to the pool; any other is closed.
        try:
            self._resp.close()
        except Exception:  # closing a broken connection must not hide the call's outcome
            pass


class _Target:
    """What is derived once from a URL: httpcore's URL and the ``Host`` header."""

    __slots__ = ("host", "url")

    def __init__(self, url: str) -> None:
        import httpcore

        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.url = httpcore.URL(url)
        self.host = parts.netloc.rpartition("@")[2].encode("idna")


class SyncTransport:
    """Sends :class:`HTTPRequest` values over one httpcore pool under a provider's
    :class:`Limits`."""

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
        self._lock = threading.Lock()
        self._targets: dict[str, _Target] = {}
        self._base = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]
        self.errors = _errors()

    @property
    def client(self) -> Any:
        """The connection pool (``httpcore.ConnectionPool``, or ``httpcore.HTTPProxy`` when
        the environment names a proxy for the server), made on first use."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import httpcore

                    n = self.limits.max_connections
                    common: dict[str, Any] = {
                        "ssl_context": ssl_context(self.tls_url),
                        "max_connections": n,
                        "max_keepalive_connections": n,
                        "keepalive_expiry": KEEPALIVE_EXPIRY,
                    }
                    proxy = proxy_for(self.tls_url)
                    if proxy:
                        self._client = httpcore.HTTPProxy(proxy_url=proxy, **common)
                    else:
                        self._client = httpcore.ConnectionPool(**common)
        return self._client

    def _target(self, url: str) -> _Target:
        t = self._targets.get(url)
        if t is None:
            t = _Target(url)
            if len(self._targets) < 256:  # a provider calls a handful of URLs
                self._targets[url] = t
        return t

    def open(self, req: HTTPRequest, url: str) -> SyncAnswer:
        """Send ``req`` to ``url``; the answer's headers are in, its body not yet read."""
        timeout_error, connect_error, transport_error, httpcore = self.errors
        lim = self.limits.for_call(req.timeout)
        started = time.monotonic()
        pool = self.client
        timeouts = {
            "connect": min(lim.connect, lim.total),
            "read": min(lim.first_token, lim.total),
            "write": lim.write,
            "pool": lim.pool,
        }
        body = req.body_bytes()
        try:
            target = self._target(url)
        except ValueError as exc:
            raise self.fail.unreachable(url, exc) from exc
        headers = [(b"Host", target.host), *self._base]
        if req.headers:
            headers.extend(
                (k.encode("latin-1"), v.encode("latin-1")) for k, v in req.headers.items()
            )
        if body is not None:
            headers.append((b"Content-Length", str(len(body)).encode()))
        try:
            resp = pool.handle_request(
                httpcore.Request(
                    req.method,
                    target.url,
                    headers=headers,
                    content=body,
                    extensions={"timeout": timeouts},
                )
            )
        except timeout_error as exc:
            raise self.fail.timeout(url, lim, exc, False, started + lim.total) from exc
        except connect_error as exc:
            raise self.fail.unreachable(url, exc) from exc
        except transport_error as exc:
            raise self.fail.cut(url, exc, during="while answering") from exc
        return SyncAnswer(self, resp, url, lim, started, timeouts)

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


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``/``HTTP_PROXY``/
    ``ALL_PROXY``, unless ``NO_PROXY`` excludes its host), as httpx's client honoured."""
    import urllib.request  # only when a pool is made: it pulls in http.client and email

    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or not parts.hostname:
        return None
    # (undocumented in the stubs, stable since Python 3.2: what urllib itself uses)
    bypass = getattr(urllib.request, "proxy_bypass_environment")  # noqa: B009
    if bypass(parts.hostname, proxies):
        return None
    return proxy if "://" in proxy else "http://" + proxy


__all__ = ["ResponseError", "SyncAnswer", "SyncTransport", "proxy_for"]
