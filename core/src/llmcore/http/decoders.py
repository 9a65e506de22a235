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
        head = None
        if self._parts:  # the end of a line begun in an earlier read
            end = data.find(b"\n")
            if end < 0:
                self._size += len(data)
                if self._size > self.max_line:
                    raise LimitExceeded("a line of the answer", self.max_line)
                self._parts.append(data)
                return []
            self._parts.append(data[:end])
            head = b"".join(self._parts)
            self._parts.clear()
            self._size = 0
            data = data[end + 1 :]
        # split, measure and strip in C (bytes.split, max, a comprehension only when a
        # line ends with CRLF): most reads hold several whole lines
        lines = data.split(b"\n")
        rest = lines.pop()
        if head is not None:
            lines.insert(0, head)
        if lines and max(map(len, lines)) > self.max_line:
            raise LimitExceeded("a line of the answer", self.max_line)
        if rest:
            if len(rest) > self.max_line:
                raise LimitExceeded("a line of the answer", self.max_line)
            self._parts.append(rest)
            self._size = len(rest)
        if b"\r" in data or (head is not None and head[-1:] == b"\r"):
            lines = [line[:-1] if line[-1:] == b"\r" else line for line in lines]
        return lines

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


@attrs.define(slots=True)
class SSERun:
    """Consecutive events, each one ``data: {…}`` line of whole JSON (an object), taken
    together by :meth:`SSEDecoder.feed_runs`: the lines as received, and their values."""

    lines: list[bytes]
    values: list[dict[str, Any]]


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
        eager = self.eager
        for line in self.lines.feed(data):
            # The two lines nearly every event is made of, taken without the general
            # rules (the same outcome, less work): a blank line with nothing pending, and
            # in eager mode a ``data: {…}`` line that starts an event and is whole JSON.
            if not line:
                if self._data or self._event:
                    self._dispatch(out)
                continue
            if eager and not self._data and line[:7] == b"data: {":
                value = utf8(line)[6:]
                if len(value) <= self.max_event:
                    try:
                        parsed = json.loads(value)
                    except ValueError:
                        pass  # not whole: the general rules keep it pending
                    else:
                        out.append(
                            SSEEvent(value, self._event or "message", self._id, parsed, True)
                        )
                        self._event = ""
                        continue
            self._line(line, out)
        return out

    def feed_runs(self, data: bytes) -> list[SSEEvent | SSERun]:
        """As :meth:`feed` in eager mode, but consecutive events that are each one
        ``data: {…}`` line come out together as one :class:`SSERun`: their lines as
        received and their JSON values, parsed in one call. For a relay, which forwards
        most events as they came: per event, the work in Python is what a relay costs.

        The JSON check is that the lines, joined into one array, parse to as many objects
        as there are lines. When it fails, the lines go through the general rules one by
        one, in order (a line that is not whole JSON starts a multi-line event, and the
        lines after it are read as it makes them read).
        """
        out: list[SSEEvent | SSERun] = []
        run: list[bytes] = []
        events: list[SSEEvent] = []
        for line in self.lines.feed(data):
            if not line:
                if run:
                    run.append(line)  # kept in case the run is read by the general rules
                elif self._data or self._event:
                    self._dispatch(events)
                continue
            if not self._data and not self._event and line[:7] == b"data: {":
                if len(line) - 6 > self.max_event:
                    raise LimitExceeded("an event of the stream", self.max_event)
                run.append(line)
                continue
            if run:
                self._settle(run, out, events)
                run = []
            self._line(line, events)
            if events:
                out.extend(events)
                events = []
        if run:
            self._settle(run, out, events)
        out.extend(events)
        return out

    def _settle(
        self, run: list[bytes], out: list[SSEEvent | SSERun], events: list[SSEEvent]
    ) -> None:
        out.extend(events)
        events.clear()
        lines = [line for line in run if line]
        try:
            values = json.loads(b"[" + b",".join([line[6:] for line in lines]) + b"]")
        except ValueError:
            values = None
        if (
            values is not None
            and len(values) == len(lines)
            and all([type(v) is dict for v in values])  # a list: faster than a generator
        ):
            out.append(SSERun(lines, values))
            return
        for line in run:  # one is not whole JSON: the general rules, in order
            self._line(line, events)
        out.extend(events)
        events.clear()

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
            if (
                self.eager
                and len(self._data) == 1
                and value[:1] in ("{", "[")
                and value != "[DONE]"
            ):
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
