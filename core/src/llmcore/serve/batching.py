"""Take a stream's items in the batches they arrive in, so a gateway writes each batch to
its client with one socket write instead of one per item.

Why: an upstream server's events usually arrive several to a read (a whole short answer in
one), and on loopback every socket write costs tens of µs of CPU; writing event by event
was most of the gateway's cost per stream. :func:`batches` pulls items while the next one is
ready without waiting, and hands the batch over the moment the next item would have to
wait for the network.

How it knows: it drives ``__anext__()`` one step itself (``send(None)``). The step either
finishes (the item was ready) or stops at the future it must wait for; then the batch so
far is handed over, and the rest of the step is awaited through :class:`_Resume`, which
does exactly what ``await`` / ``yield from`` does with the same awaitable.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Generator
from typing import Any, TypeVar

T = TypeVar("T")


class _Resume(Awaitable[T]):
    """Await the rest of an awaitable already driven up to a suspension (``waiting``, what
    it yielded); with ``throw``, that exception is first raised inside it where it waits,
    as a task does with a cancellation."""

    __slots__ = ("aw", "throw", "waiting")

    def __init__(self, aw: Any, waiting: Any, throw: BaseException | None = None) -> None:
        self.aw = aw
        self.waiting = waiting
        self.throw = throw

    def __await__(self) -> Generator[Any, Any, T]:
        aw = self.aw
        try:
            waiting = aw.throw(self.throw) if self.throw is not None else self.waiting
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        while True:
            try:
                sent = yield waiting
            except BaseException as exc:  # a cancellation (or close), thrown in by the task
                try:
                    waiting = aw.throw(exc)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]
            else:
                try:
                    waiting = aw.send(sent)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]


async def batches(
    it: AsyncIterator[T], first: list[T] | None = None
) -> AsyncIterator[tuple[list[T], bool]]:
    """``it``'s items in order, as lists of the items that were ready together, each with
    ``last``: True when ``it`` ended right after them without a wait (so a writer can send
    its closing bytes in the same write). ``first`` (items already taken from ``it``) lead
    the first batch, and go out at once if the next item must be waited for.

    An error from ``it`` comes after the items before it were handed over.
    """
    batch: list[T] = list(first) if first else []
    while True:
        step = it.__anext__()
        try:
            waiting = step.send(None)  # type: ignore[attr-defined]
        except StopIteration as done:  # ready without waiting
            batch.append(done.value)
            continue
        except StopAsyncIteration:
            break
        except BaseException:
            if batch:
                yield batch, False
            raise
        if batch:  # the next item must wait for the network: hand these over first
            try:
                yield batch, False
            except BaseException as exc:
                # The consumer stopped (closed, cancelled) while the next item was being
                # waited for: end that wait the way a cancelled task would, so the source
                # unwinds (its connection released) before this generator ends.
                with contextlib.suppress(BaseException):
                    await _Resume(step, waiting, throw=exc)
                raise
            batch = []
        try:
            item: T = await _Resume(step, waiting)
        except StopAsyncIteration:
            return  # the end had to be waited for: every batch is out
        batch.append(item)
    if batch:
        yield batch, True
