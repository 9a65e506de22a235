"""serve.batching: a stream's items in the batches they arrive in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from llmcore.serve.batching import batches


async def source(log: list[str]) -> AsyncIterator[int]:
    try:
        for i in (1, 2, 3):
            yield i  # ready together, as events decoded from one read
        await asyncio.sleep(0.01)  # the network
        for i in (4, 5):
            yield i
        await asyncio.sleep(0.01)
        yield 6
    finally:
        await asyncio.sleep(0)  # cleanup that waits, as releasing a connection may
        log.append("closed")


def test_items_ready_together_come_in_one_batch() -> None:
    async def main() -> tuple[list[list[int]], list[str]]:
        log: list[str] = []
        return [b async for b, _ in batches(source(log))], log

    got, log = asyncio.run(main())
    assert got == [[1, 2, 3], [4, 5], [6]]
    assert log == ["closed"]


def test_an_error_comes_after_the_items_before_it() -> None:
    async def broken() -> AsyncIterator[int]:
        yield 1
        yield 2
        raise ValueError("cut")

    async def main() -> list[list[int]]:
        out: list[list[int]] = []
        with pytest.raises(ValueError, match="cut"):
            async for b, _ in batches(broken()):
                out.append(b)
        return out

    assert asyncio.run(main()) == [[1, 2]]


def test_a_consumer_that_stops_mid_wait_lets_the_source_clean_up() -> None:
    async def main() -> list[str]:
        log: list[str] = []
        it = batches(source(log))
        assert await it.__anext__() == ([1, 2, 3], False)  # the source now waits for 4
        await it.aclose()
        return log

    assert asyncio.run(main()) == ["closed"]


def test_cancelling_the_consumer_while_it_waits_unwinds_the_source() -> None:
    async def slow(log: list[str]) -> AsyncIterator[int]:
        try:
            yield 1
            await asyncio.sleep(30)
            yield 2
        finally:
            await asyncio.sleep(0)
            log.append("closed")

    async def main() -> list[str]:
        log: list[str] = []
        got: list[list[int]] = []

        async def consume() -> None:
            async for b, _ in batches(slow(log)):
                got.append(b)

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert got == [[1]]
        return log

    assert asyncio.run(main()) == ["closed"]


def test_items_already_taken_lead_the_first_batch_and_never_wait() -> None:
    async def main() -> list[list[int]]:
        log: list[str] = []
        return [b async for b, _ in batches(source(log), [0])]

    assert asyncio.run(main()) == [[0, 1, 2, 3], [4, 5], [6]]

    async def waits_first() -> list[list[int]]:
        async def late() -> AsyncIterator[int]:
            await asyncio.sleep(0.01)
            yield 1

        return [b async for b, _ in batches(late(), [0])]

    assert asyncio.run(waits_first()) == [[0], [1]]


def test_last_marks_a_batch_the_source_ended_right_after() -> None:
    async def whole() -> AsyncIterator[int]:
        for i in (1, 2):
            yield i  # a short answer read at once, its end included

    async def waited_end() -> AsyncIterator[int]:
        yield 1
        await asyncio.sleep(0.01)  # the end comes with a later read

    async def main() -> tuple[list[tuple[list[int], bool]], list[tuple[list[int], bool]]]:
        return (
            [b async for b in batches(whole(), [0])],
            [b async for b in batches(waited_end())],
        )

    ready, waited = asyncio.run(main())
    assert ready == [([0, 1, 2], True)]
    assert waited == [([1], False)]
