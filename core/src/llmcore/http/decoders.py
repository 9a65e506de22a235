"""Byte-stream decoders a transport feeds: lines, Server-Sent Events, NDJSON, and the
bounded decompression of a body.

Each is fed the bytes as they arrive and returns what became complete. All are linear
in their input (a line is searched for its end only in the new bytes, never rescanned)
and bounded: a line or event longer than ``max_line`` bytes is a :class:`LimitExceeded`,
so a server that never sends a newline cannot grow the buffer without end.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import attrs


class LimitExceeded(Exception):
    """A line, event or body went past its byte limit (``what`` names which)."""

    def __init__(self, what: str, limit: int) -> None:
        self.what = what
        self.limit = limit
        super().__init__(f"{what} is larger than the limit of {limit} bytes")


class BadPayload(Exception):
    """A line or event could not be read (invalid UTF-8, not JSON); ``snippet`` quotes it."""

    def __init__(self, why: str, snippet: str) -> None:
        self.why = why
        self.snippet = snippet
        super().__init__(f"{why}: {snippet!r}")


class LineDecoder:
    """Bytes in, complete lines (``bytes``, without ``\\r\\n``) out."""

    __slots__ = ("_parts", "_size", "max_line")

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            piece = data[start:end]
            if self._parts:
                self._parts.append(piece)
                piece = b"".join(self._parts)
                self._parts.clear()
                self._size = 0
            if len(piece) > self.max_line:
                raise LimitExceeded("a line of the answer", self.max_line)
            out.append(piece[:-1] if piece.endswith(b"\r") else piece)
            start = end + 1
        if start < len(data):
            rest = data[start:]
            self._size += len(rest)
            if self._size > self.max_line:
                raise LimitExceeded("a line of the answer", self.max_line)
            self._parts.append(rest)
        return out

    def close(self) -> list[bytes]:
        """The last line when the stream ended without a newline."""
        if not self._parts:
            return []
        piece = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        piece = piece[:-1] if piece.endswith(b"\r") else piece
        return [piece] if piece.strip() else []


def utf8(line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadPayload(
            f"not valid UTF-8 (byte {exc.start})", line[:200].decode("utf-8", "replace")
        ) from None


@attrs.define(slots=True)
class SSEEvent:
    """One Server-Sent Event: its ``event`` name (``message`` by default) and ``data``."""

    data: str
    event: str = "message"
    id: str | None = None
    #: The JSON value of ``data`` when the decoder already parsed it (eager mode).
    value: Any = None
    parsed: bool = False

    def json(self) -> Any:
        """``data`` as JSON (parsed once)."""
        if not self.parsed:
            self.value = json.loads(self.data)
            self.parsed = True
        return self.value


class SSEDecoder:
    """Bytes in, :class:`SSEEvent` out (the WHATWG rules: ``data:`` lines joined by
    newlines, dispatched on a blank line; comments and unknown fields skipped).

    ``eager=True`` also dispatches a ``data:`` line at once when it is a complete JSON
    value on its own, for servers that put one object per line and are slow to send the
    blank line (or never do). ``fields`` names extra fields reported as events of that
    name (llama.cpp reports a failure as an ``error:`` line).
    """

    def __init__(
        self, max_event: int, *, eager: bool = False, fields: tuple[str, ...] = ()
    ) -> None:
        self.lines = LineDecoder(max_event)
        self.max_event = max_event
        self.eager = eager
        self.fields = fields
        self._data: list[str] = []
        self._size = 0
        self._event = ""
        self._id: str | None = None

    def feed(self, data: bytes) -> list[SSEEvent]:
        out: list[SSEEvent] = []
        for line in self.lines.feed(data):
            self._line(line, out)
        return out

    def close(self) -> list[SSEEvent]:
        out: list[SSEEvent] = []
        for line in self.lines.close():
            self._line(line, out)
        self._dispatch(out)
        return out

    def _line(self, raw: bytes, out: list[SSEEvent]) -> None:
        if not raw:
            self._dispatch(out)
            return
        if raw[:1] == b":":
            return  # a comment (": ping")
        line = utf8(raw)
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._size += len(value)
            if self._size > self.max_event:
                raise LimitExceeded("an event of the stream", self.max_event)
            self._data.append(value)
            if self.eager and len(self._data) == 1 and value[:1] in ("{", "["):
                try:
                    parsed = json.loads(value)
                except ValueError:
                    return
                out.append(SSEEvent(value, self._event or "message", self._id, parsed, True))
                self._reset()
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        elif name in self.fields:
            out.append(SSEEvent(value, name, self._id))

    def _dispatch(self, out: list[SSEEvent]) -> None:
        if self._data:
            out.append(SSEEvent("\n".join(self._data), self._event or "message", self._id))
        self._reset()

    def _reset(self) -> None:
        self._data.clear()
        self._size = 0
        self._event = ""


class NDJSONDecoder:
    """Bytes in, one JSON value per non-blank line out."""

    def __init__(self, max_line: int) -> None:
        self.lines = LineDecoder(max_line)

    def feed(self, data: bytes) -> list[Any]:
        return [_json_line(ln) for ln in self.lines.feed(data) if ln.strip()]

    def close(self) -> list[Any]:
        return [_json_line(ln) for ln in self.lines.close() if ln.strip()]


def _json_line(line: bytes) -> Any:
    text = utf8(line)
    try:
        return json.loads(text)
    except ValueError:
        raise BadPayload("a line is not valid JSON", text[:200]) from None


class BodyDecoder:
    """Raw body bytes in, decoded (decompressed) bytes out, counted against ``limit``.

    Decompression is done here rather than by the HTTP library so that it is done in
    bounded steps: a small gzip bomb is stopped once its *decoded* size passes the limit,
    never inflated whole. Encodings: identity, gzip, deflate.
    """

    #: The largest piece one decompression step produces.
    STEP = 256 * 1024

    def __init__(self, encoding: str | None, limit: int, what: str = "the answer") -> None:
        self.limit = limit
        self.what = what
        self.size = 0
        enc = (encoding or "identity").strip().lower()
        if enc in ("", "identity"):
            self._z: Any = None
        elif enc in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif enc == "deflate":
            self._z = zlib.decompressobj()
        else:
            raise BadPayload("the server used a content encoding llmcore did not ask for", enc)

    def feed(self, data: bytes) -> list[bytes]:
        if self._z is None:
            self._count(len(data))
            return [data] if data else []
        out: list[bytes] = []
        try:
            piece = self._z.decompress(data, self.STEP)
            while True:
                if piece:
                    self._count(len(piece))
                    out.append(piece)
                tail = self._z.unconsumed_tail
                if not tail:
                    break
                piece = self._z.decompress(tail, self.STEP)
        except zlib.error as exc:
            raise BadPayload("the compressed answer is corrupt", str(exc)) from None
        return out

    def close(self) -> list[bytes]:
        if self._z is None:
            return []
        try:
            rest = self._z.flush()
        except zlib.error as exc:
            raise BadPayload("the compressed answer is corrupt", str(exc)) from None
        self._count(len(rest))
        return [rest] if rest else []

    def _count(self, n: int) -> None:
        self.size += n
        if self.size > self.limit:
            raise LimitExceeded(self.what, self.limit)
