"""Stream decoders: bytes of a streamed answer in, ``StreamChunk`` values out.

A provider's :meth:`~llmcore.Provider.stream_decoder` returns one per call. The two bases
here do the framing (SSE or NDJSON, linear and bounded); a provider subclass only turns
one event or one object into chunks, and says at the end whether the stream was complete.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..types import StreamChunk
from .decoders import NDJSONDecoder, SSEDecoder, SSEEvent


class StreamDecoder(Protocol):
    """What the base class needs of a stream decoder."""

    #: True once the server said the answer is complete (the rest is not read).
    done: bool
    # Optional: ``events`` (an int), how many events of substance were seen; the base
    # class then counts the answer as started even before a chunk is yielded.

    def feed(self, data: bytes) -> list[StreamChunk]: ...

    def close(self) -> list[StreamChunk]:
        """The stream ended: the closing chunk(s); raise if the answer was cut short."""
        ...


class SSEChunks:
    """Base of an SSE stream decoder: implement :meth:`event` and :meth:`finish`."""

    def __init__(
        self, max_event: int, *, eager: bool = False, fields: tuple[str, ...] = ()
    ) -> None:
        self.sse = SSEDecoder(max_event, eager=eager, fields=fields)
        self.done = False
        #: Events seen (keep-alive comments are not events): the answer has started even
        #: when they yield no chunk yet (a tool call being assembled).
        self.events = 0

    def feed(self, data: bytes) -> list[StreamChunk]:
        out: list[StreamChunk] = []
        for ev in self.sse.feed(data):
            self.events += 1
            out.extend(self.event(ev))
            if self.done:
                break
        return out

    def close(self) -> list[StreamChunk]:
        out: list[StreamChunk] = []
        if not self.done:
            for ev in self.sse.close():
                out.extend(self.event(ev))
        out.extend(self.finish())
        return out

    def event(self, ev: SSEEvent) -> list[StreamChunk]:
        raise NotImplementedError

    def finish(self) -> list[StreamChunk]:
        return []


class NDJSONChunks:
    """Base of an NDJSON stream decoder: implement :meth:`item` and :meth:`finish`."""

    def __init__(self, max_line: int) -> None:
        self.lines = NDJSONDecoder(max_line)
        self.done = False
        #: Objects seen (blank keep-alive lines are not): the answer has started.
        self.events = 0

    def feed(self, data: bytes) -> list[StreamChunk]:
        out: list[StreamChunk] = []
        for obj in self.lines.feed(data):
            self.events += 1
            out.extend(self.item(obj))
            if self.done:
                break
        return out

    def close(self) -> list[StreamChunk]:
        out: list[StreamChunk] = []
        if not self.done:
            for obj in self.lines.close():
                out.extend(self.item(obj))
        out.extend(self.finish())
        return out

    def item(self, obj: Any) -> list[StreamChunk]:
        raise NotImplementedError

    def finish(self) -> list[StreamChunk]:
        return []
