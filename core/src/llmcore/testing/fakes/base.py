"""The scripted HTTP server every fake builds on.

A fake answers each request with the next :class:`Reply` from its script (or its default
reply when the script is empty). A reply is rendered in the fake's wire format by the route
that received the request, unless it asks for a fault: an error status with headers, a delay,
a connection reset, a stream cut after N chunks, or a malformed body.
"""

from __future__ import annotations

import collections
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import attrs


@attrs.define
class Reply:
    """What the fake answers next. Every field is optional; the default is a plain text reply."""

    text: str = "Hello from the fake server."
    #: Stream pieces; default: ``text`` split into words (spaces kept).
    chunks: list[str] | None = None
    #: Tool calls: ``[{"name": "write_file", "arguments": {...}, "id": "call_1"}]``.
    tool_calls: list[dict[str, Any]] | None = None
    thinking: str | None = None
    finish_reason: str | None = None
    usage: tuple[int, int] | None = None  # (input, output); default: counted from text
    model: str | None = None
    # -- faults ----------------------------------------------------------------------
    status: int = 200
    headers: dict[str, str] = attrs.field(factory=dict)
    error: str | None = None  # error message rendered in the API's error shape
    body: bytes | None = None  # raw body sent as is (malformed JSON, HTML error pages)
    delay: float = 0.0  # seconds before the status line
    chunk_delay: float = 0.0  # seconds between stream pieces
    reset: bool = False  # close the connection without answering
    cut_after: int | None = None  # stream: drop the connection after this many pieces
    #: Free-form data for API-specific behaviour.
    extra: dict[str, Any] = attrs.field(factory=dict)

    def pieces(self) -> list[str]:
        if self.chunks is not None:
            return list(self.chunks)
        words = re.findall(r"\S+\s*|\s+", self.text)
        return words or [""]

    def token_usage(self, prompt_text: str = "") -> tuple[int, int]:
        if self.usage is not None:
            return self.usage
        return (max(1, len(prompt_text.split())), max(1, len(self.text.split())))


@attrs.define
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    time: float

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


Route = Callable[["Handler", RecordedRequest, Reply], None]
_Fake = TypeVar("_Fake", bound="FakeServer")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _handle(self) -> None:
        fake = self.server.fake
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
        req = RecordedRequest(
            self.command, path, query, dict(self.headers.items()), body, time.time()
        )
        route = fake.find_route(self.command, path)
        if route is None:
            fake.record(req)
            self.send_json(404, {"error": f"no route {self.command} {path}"})
            return
        reply = fake.next_reply(req)
        if reply.delay:
            time.sleep(reply.delay)
        if reply.reset:
            self.reset()
            return
        if reply.status >= 400 or reply.body is not None:
            if reply.body is not None:
                self.send_raw(reply.status, reply.body, reply.headers)
            else:
                fake.render_error(self, req, reply)
            return
        route(self, req, reply)

    do_GET = do_POST = do_DELETE = do_PUT = _handle

    def _read_chunked(self) -> bytes:
        out = b""
        while True:
            size = int(self.rfile.readline().strip(), 16)
            if size == 0:
                self.rfile.readline()
                return out
            out += self.rfile.read(size)
            self.rfile.readline()

    # -- writing ---------------------------------------------------------------------
    def send_raw(
        self,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        self.send_response(status)
        hdrs = {"Content-Type": content_type, **(headers or {})}
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self.send_raw(status, json.dumps(data).encode(), headers)

    def send_stream(
        self, pieces: Iterable[bytes], reply: Reply, content_type: str = "text/event-stream"
    ) -> None:
        """Send ``pieces`` with chunked encoding; honour ``chunk_delay`` and ``cut_after``."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        for k, v in reply.headers.items():
            self.send_header(k, v)
        self.end_headers()
        for i, piece in enumerate(pieces):
            if reply.cut_after is not None and i >= reply.cut_after:
                self.wfile.flush()
                self.reset()
                return
            if reply.chunk_delay and i:
                time.sleep(reply.chunk_delay)
            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def reset(self) -> None:
        """Drop the connection at once (RST where the platform allows)."""
        try:
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
        except OSError:
            pass
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.connection.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Soak tests open dozens of connections at once; the default backlog of 5 drops them.
    request_queue_size = 256
    fake: FakeServer

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.open_connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.conn_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.conn_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-answer is what fault tests do; only report other errors."""
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)):
            return
        super().handle_error(request, client_address)

    def close_all(self) -> None:
        """A stopped server must look stopped to clients holding keep-alive connections."""
        with self.conn_lock:
            conns = list(self.open_connections)
            self.open_connections.clear()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()


class FakeServer:
    """A real HTTP server on 127.0.0.1 (random port) running in a thread.

    Subclasses add routes with :meth:`route` and implement :meth:`render_error`.
    """

    def __init__(
        self, default: Reply | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.default = default or Reply()
        self.script: collections.deque[Reply] = collections.deque()
        self.requests: list[RecordedRequest] = []
        self._routes: list[tuple[str, re.Pattern[str], Route]] = []
        self._lock = threading.Lock()
        self._host, self._port = host, port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.setup_routes()

    # -- configuration ---------------------------------------------------------------
    def setup_routes(self) -> None:
        """Subclasses register their routes here."""

    def route(self, method: str, pattern: str, handler: Route) -> None:
        self._routes.append((method, re.compile(f"^{pattern}$"), handler))

    def find_route(self, method: str, path: str) -> Route | None:
        for m, pat, handler in self._routes:
            if m == method and pat.match(path):
                return handler
        return None

    def push(self: _Fake, *replies: Reply) -> _Fake:
        """Queue replies; each request takes the next one."""
        with self._lock:
            self.script.extend(replies)
        return self

    def next_reply(self, req: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(req)
            return self.script.popleft() if self.script else self.default

    def record(self, req: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(req)

    def render_error(self, h: Handler, req: RecordedRequest, reply: Reply) -> None:
        h.send_json(reply.status, {"error": reply.error or "error"}, reply.headers)

    # -- lifecycle -------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None, "start the server first"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What a provider's or agent's ``base_url`` should be set to: the API's own
        convention. The server root here; fakes of APIs whose clients include a version
        path (OpenAI's ``/v1``) override it."""
        return self.url

    def start(self: _Fake) -> _Fake:
        self._server = _Server((self._host, self._port), Handler)
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.close_all()
            self._server = None

    def __enter__(self: _Fake) -> _Fake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
