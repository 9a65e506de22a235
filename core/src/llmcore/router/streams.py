"""Routed streams: fail over before the first chunk, never after it.

Opening a stream (the call and reading up to the first chunk that carries something) is
the retryable part, retried and failed over like a chat call. Once the caller has seen a
chunk, a failure ends the stream with :class:`StreamInterrupted` holding the partial
text: restarting elsewhere would duplicate output.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import ProviderError
from ..types import Attempt, ChatResponse, StreamChunk
from .calls import aattempts, attempts, invoke
from .failures import Unsupported

if TYPE_CHECKING:
    from .candidates import Candidate
    from .run import Run


class RoutedStream(Iterator[StreamChunk]):
    """The chunks of a routed stream; ``attempts`` lists the tries so far (as in
    ``ChatResponse.attempts``)."""

    def __init__(self, gen: Iterator[StreamChunk], attempts: list[Attempt]) -> None:
        self._gen = gen
        self.attempts = attempts

    def __next__(self) -> StreamChunk:
        return next(self._gen)

    def close(self) -> None:
        close = getattr(self._gen, "close", None)
        if close is not None:
            close()


class AsyncRoutedStream(AsyncIterator[StreamChunk]):
    """The async :class:`RoutedStream`."""

    def __init__(self, gen: AsyncIterator[StreamChunk], attempts: list[Attempt]) -> None:
        self._gen = gen
        self.attempts = attempts

    async def __anext__(self) -> StreamChunk:
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        aclose = getattr(self._gen, "aclose", None)
        if aclose is not None:
            await aclose()


class _Seen:
    """What the caller got so far: the text (for StreamInterrupted) and the last usage."""

    __slots__ = ("last", "parts")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.last: StreamChunk | None = None  # the last chunk with usage (and the model)

    def see(self, chunk: StreamChunk) -> None:
        if chunk.content:
            self.parts.append(chunk.content)
        if chunk.usage is not None:
            self.last = chunk


def stream(run: Run) -> Iterator[StreamChunk]:
    """The chunks of the first candidate that opens a stream."""
    while (cand := run.next()) is not None:
        req = run.request_for(cand)
        try:
            it, held, t0 = attempts(run, cand, functools.partial(_open, run, cand, req))
        except Unsupported:
            continue
        except ProviderError as exc:
            run.give_up(cand, exc)
            continue
        ttft = time.monotonic() - run.start
        seen = _Seen()
        try:
            for chunk in itertools.chain(held, it):
                seen.see(chunk)
                yield chunk
        except Exception as exc:
            raise run.interrupted(cand, exc, t0, seen.parts)  # noqa: B904
        finally:
            run.crew.balancer.leave(cand)
            close = getattr(it, "close", None)
            if close is not None:  # the caller stopped early: release the connection
                close()
        run.streamed(cand, t0, ttft, seen.last)
        return
    raise run.all_failed()


async def astream(run: Run) -> AsyncIterator[StreamChunk]:
    """The async :func:`stream`."""
    while (cand := run.next()) is not None:
        req = run.request_for(cand)
        try:
            it, held, t0 = await aattempts(run, cand, functools.partial(_aopen, run, cand, req))
        except Unsupported:
            continue
        except ProviderError as exc:
            run.give_up(cand, exc)
            continue
        ttft = time.monotonic() - run.start
        seen = _Seen()
        try:
            for chunk in held:
                seen.see(chunk)
                yield chunk
            async for chunk in it:
                seen.see(chunk)
                yield chunk
        except Exception as exc:
            raise run.interrupted(cand, exc, t0, seen.parts)  # noqa: B904
        finally:
            run.crew.balancer.leave(cand)
            aclose = getattr(it, "aclose", None)
            if aclose is not None:  # the caller stopped early: release the connection
                await aclose()
        run.streamed(cand, t0, ttft, seen.last)
        return
    raise run.all_failed()


def _open(
    run: Run, cand: Candidate, req: Any
) -> tuple[Iterator[StreamChunk], list[StreamChunk], float]:
    """Call and read up to the first chunk that carries something (the retryable part).

    The candidate stays counted in flight until the stream ends.
    """
    t0 = time.monotonic()
    run.crew.balancer.enter(cand)
    held: list[StreamChunk] = []
    try:
        got = invoke(run, cand, req, False)
        it: Iterator[StreamChunk] = (
            iter([_as_chunk(got, cand)]) if cand.kind == "cli" else iter(got)
        )
        for chunk in it:
            held.append(chunk)
            if _carries(chunk):
                break
    except Exception as exc:
        run.crew.balancer.leave(cand)
        raise run.failed_try(cand, exc, t0)  # noqa: B904 (keeps its own cause)
    return it, held, t0


async def _aopen(
    run: Run, cand: Candidate, req: Any
) -> tuple[AsyncIterator[StreamChunk], list[StreamChunk], float]:
    """The async :func:`_open`."""
    t0 = time.monotonic()
    run.crew.balancer.enter(cand)
    held: list[StreamChunk] = []
    try:
        got = invoke(run, cand, req, True)
        if cand.kind == "cli":
            it: AsyncIterator[StreamChunk] = _aiter_one(_as_chunk(await got, cand))
        else:
            it = got.__aiter__()
        while True:
            try:
                chunk = await it.__anext__()
            except StopAsyncIteration:
                break
            held.append(chunk)
            if _carries(chunk):
                break
    except Exception as exc:
        run.crew.balancer.leave(cand)
        raise run.failed_try(cand, exc, t0)  # noqa: B904 (keeps its own cause)
    return it, held, t0


def _carries(chunk: StreamChunk) -> bool:
    """Does the chunk carry something the caller would see (not only a role header)?"""
    return bool(chunk.content or chunk.thinking or chunk.tool_calls or chunk.finish_reason)


def _as_chunk(resp: ChatResponse, cand: Candidate) -> StreamChunk:
    """An agent's whole answer as the one chunk of its stream."""
    return StreamChunk(
        content=resp.content,
        finish_reason="stop",
        usage=resp.usage,
        model=resp.model,
        provider=cand.name,
    )


async def _aiter_one(chunk: StreamChunk) -> AsyncIterator[StreamChunk]:
    yield chunk
