"""A malicious-server kit: the faults a provider must survive, for plugin authors too.

:class:`HostileServer` is a real HTTP/1.1 server on 127.0.0.1 that answers every request
(any path) with the fault set in :attr:`HostileServer.fault`:

========================  ================================================================
``trickle``               a valid 200 whose body arrives one byte at a time, forever
``silence``               accepts the connection and the request, never answers
``endless_line``          a 200 stream whose first line never ends
``endless_stream``        a 200 stream of valid chunks that never finishes
``keepalive_only``        a 200 stream of keep-alives only (``: ping`` / blank lines), forever
``oversize``              a 200 body far larger than any answer
``gzip_bomb``             a small gzip body that inflates to 64 MiB
``redirect``              307 to the same path on another loopback address (127.0.0.2)
``huge_error_page``       a 500 whose HTML body is 8 MiB (the status must still show)
``unknown_encoding``      a 200 compressed with an encoding llmcore did not ask for (br)
``bad_utf8``              a 200 whose JSON holds bytes that are not UTF-8
``error_in_200``          a 200 whose body is an error object, not an answer
``absurd_retry_after``    429 with ``Retry-After: 1e20`` (and ``retry-after-ms: inf``)
``absurd_retry_after_503`` 503 with ``retry-after-ms: 1e300``
========================  ================================================================

Endless answers stop when the client goes away, when the server stops, or after
:attr:`HostileServer.max_seconds`, so a test that fails leaves no busy thread behind. The
redirect's target (:attr:`HostileServer.elsewhere`) records every connection it gets: a
provider must send nothing there.

The contract suite (:class:`llmcore.testing.contract.ProviderContract`) runs every fault
against every provider, sync and async.
"""

from __future__ import annotations

import gzip
import socket
import socketserver
import threading
import time
from typing import Any

FAULTS = (
    "trickle",
    "silence",
    "endless_line",
    "endless_stream",
    "keepalive_only",
    "oversize",
    "gzip_bomb",
    "redirect",
    "huge_error_page",
    "unknown_encoding",
    "bad_utf8",
    "error_in_200",
    "absurd_retry_after",
    "absurd_retry_after_503",
)

#: One OpenAI-style SSE chunk; a provider with another stream format passes its own.
OPENAI_STREAM_UNIT = (
    b'data: {"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}\n\n'
)
#: One Ollama NDJSON chunk.
OLLAMA_STREAM_UNIT = b'{"model":"m","message":{"role":"assistant","content":"x"},"done":false}\n'

_BOMB: bytes | None = None


def gzip_bomb() -> bytes:
    """64 MiB of zeros, gzipped to ~64 KB (made once per process)."""
    global _BOMB
    if _BOMB is None:
        _BOMB = gzip.compress(b"\0" * (64 << 20), compresslevel=9)
    return _BOMB


class _Recorder:
    """A listener on another loopback address that only counts connections."""

    def __init__(self, host: str = "127.0.0.2") -> None:
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.host = host
        self.port: int = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


class HostileServer:
    """The malicious server; use as a context manager. Set :attr:`fault` before a call."""

    def __init__(
        self,
        *,
        stream_unit: bytes = OPENAI_STREAM_UNIT,
        stream_type: str = "text/event-stream",
        max_seconds: float = 20.0,
    ) -> None:
        self.fault = "silence"
        gzip_bomb()  # made now, so its 64 MiB of zeros is not counted against a client
        self.stream_unit = stream_unit
        self.stream_type = stream_type
        self.max_seconds = max_seconds
        self.requests = 0
        self._stop = threading.Event()
        self.elsewhere = _Recorder()
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                server._handle(self.request)

        class TCP(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._tcp = TCP(("127.0.0.1", 0), Handler)
        self.port: int = self._tcp.server_address[1]
        #: The server root, and the same with ``/v1`` (any path is answered).
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = self.url + "/v1"
        self._thread = threading.Thread(target=self._tcp.serve_forever, daemon=True)

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._tcp.shutdown()
        self._tcp.server_close()
        self._thread.join(5)
        self.elsewhere.close()

    # -- one connection ------------------------------------------------------------------
    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        while True:  # keep-alive: answer every request on the connection the same way
            path = _read_request(conn)
            if path is None:
                return
            self.requests += 1
            try:
                if not self._answer(conn, path, self.fault):
                    return
            except OSError:
                return

    def _answer(self, conn: socket.socket, path: str, fault: str) -> bool:
        """Answer one request; False when the connection must end."""
        send = conn.sendall
        if fault == "silence":
            self._stop.wait(self.max_seconds)
            return False
        if fault == "redirect":
            where = f"http://{self.elsewhere.host}:{self.elsewhere.port}{path}"
            send(_head(307, {"Location": where, "Content-Length": "0"}))
            return True
        if fault in ("absurd_retry_after", "absurd_retry_after_503"):
            body = b'{"error": {"message": "slow down", "type": "rate_limit"}}'
            headers = (
                {"Retry-After": "1e20", "retry-after-ms": "inf"}
                if fault == "absurd_retry_after"
                else {"retry-after-ms": "1e300"}
            )
            status = 429 if fault == "absurd_retry_after" else 503
            send(
                _head(
                    status,
                    {
                        **headers,
                        "Content-Type": "application/json",
                        "Content-Length": str(len(body)),
                    },
                )
                + body
            )
            return True
        if fault == "huge_error_page":
            page = b"<html>" + b"<p>internal error</p>" * ((8 << 20) // 21) + b"</html>"
            send(_head(500, {"Content-Type": "text/html", "Content-Length": str(len(page))}) + page)
            return True
        if fault == "unknown_encoding":
            body = b"\x1b\x00\x00\x00 not really brotli"
            send(
                _head(
                    200,
                    {
                        "Content-Type": "application/json",
                        "Content-Encoding": "br",
                        "Content-Length": str(len(body)),
                    },
                )
                + body
            )
            return True
        if fault == "bad_utf8":
            body = b'{"error": "\xff\xfe not utf-8 \xc3\x28"}'
            send(
                _head(200, {"Content-Type": "application/json", "Content-Length": str(len(body))})
                + body
            )
            return True
        if fault == "error_in_200":
            body = b'{"error": {"message": "hostile says no", "type": "server_error"}}'
            send(
                _head(200, {"Content-Type": "application/json", "Content-Length": str(len(body))})
                + body
            )
            return True
        if fault == "gzip_bomb":
            body = gzip_bomb()
            send(
                _head(
                    200,
                    {
                        "Content-Type": "application/json",
                        "Content-Encoding": "gzip",
                        "Content-Length": str(len(body)),
                    },
                )
                + body
            )
            return True
        if fault == "trickle":
            send(_head(200, {"Content-Type": self.stream_type, "Transfer-Encoding": "chunked"}))
            self._forever(conn, lambda: b"1\r\n \r\n", pause=0.05)
            return False
        if fault == "endless_line":
            send(_head(200, {"Content-Type": self.stream_type, "Transfer-Encoding": "chunked"}))
            piece = _chunk(
                b"data: " + b"x" * 65536
                if self.stream_type.endswith("stream")
                else b'{"x": "' + b"x" * 65536
            )
            rest = _chunk(b"x" * 65536)
            first = [True]

            def next_piece() -> bytes:
                if first[0]:
                    first[0] = False
                    return piece
                return rest

            self._forever(conn, next_piece, pause=0.0)
            return False
        if fault == "endless_stream":
            send(_head(200, {"Content-Type": self.stream_type, "Transfer-Encoding": "chunked"}))
            block = _chunk(self.stream_unit * 64)
            self._forever(conn, lambda: block, pause=0.001)
            return False
        if fault == "keepalive_only":
            send(_head(200, {"Content-Type": self.stream_type, "Transfer-Encoding": "chunked"}))
            ping = _chunk(b": ping\n\n" if self.stream_type.endswith("event-stream") else b"\n")
            self._forever(conn, lambda: ping, pause=0.05)
            return False
        if fault == "oversize":
            total = 512 << 20
            send(_head(200, {"Content-Type": "application/json", "Content-Length": str(total)}))
            block = b" " * 65536
            self._forever(conn, lambda: block, pause=0.0, limit=total)
            return False
        raise ValueError(f"unknown fault {fault!r}; one of {', '.join(FAULTS)}")

    def _forever(
        self, conn: socket.socket, piece: Any, pause: float, limit: int | None = None
    ) -> None:
        end = time.monotonic() + self.max_seconds
        sent = 0
        while not self._stop.is_set() and time.monotonic() < end:
            data = piece()
            conn.sendall(data)
            sent += len(data)
            if limit is not None and sent >= limit:
                return
            if pause:
                self._stop.wait(pause)


def _head(status: int, headers: dict[str, str]) -> bytes:
    reason = {
        200: "OK",
        307: "Temporary Redirect",
        429: "Too Many Requests",
        500: "Internal Server Error",
        503: "Service Unavailable",
    }.get(status, "Status")
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _read_request(conn: socket.socket) -> str | None:
    """Read one request (headers and a Content-Length body); its path, or None at EOF."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        try:
            data = conn.recv(65536)
        except OSError:
            return None
        if not data:
            return None
        buf += data
        if len(buf) > 1 << 20:
            return None
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip() or 0)
    while len(body) < length:
        try:
            data = conn.recv(65536)
        except OSError:
            return None
        if not data:
            return None
        body += data
    return parts[1] if len(parts) > 1 else "/"
