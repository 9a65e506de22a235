"""Calling one candidate, and retrying it: the sync and async loops.

The two loops differ only in ``await``; every decision is :class:`.run.Run`'s. The first
call runs outside tenacity, so the common case (it answers) pays nothing for the retry
machinery.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ProviderError
from ..hooks import GenerationCall
from .agents_as_providers import agent_call
from .failures import Unsupported
from .policy import Wait, retry_cfg

if TYPE_CHECKING:
    from .candidates import Candidate
    from .run import Run

_T = TypeVar("_T")


def invoke(run: Run, cand: Candidate, req: Any, is_async: bool) -> Any:
    """Call the candidate through the generation hooks (an awaitable when ``is_async``)."""
    run.tries += 1
    crew = run.crew
    if cand.kind == "cli":
        return agent_call(crew.hooks, crew.emit, cand, req, is_async, run.rid, crew.config)
    p = cand.provider
    assert p is not None
    if cand.model is None and run.op != "embed":
        # No model asked or configured, and none could be chosen from the server's list:
        # the listing's own error (refused, 401, no chat model) is this attempt's answer.
        why = crew.chooser.failure(cand.name)
        if why is not None:
            raise why
    if run.op == "embed":
        embed = p.aembed if is_async else p.embed
        model = cand.model
        call = GenerationCall(
            operation="embed",
            request=req,
            provider=p,
            is_async=is_async,
            proceed=lambda t: embed(t, model),
            config=crew.config,
            emit=crew.emit,
        )
    else:
        method = {
            ("chat", False): p.chat,
            ("stream", False): p.stream,
            ("generate", False): p.generate,
            ("chat", True): p.achat,
            ("stream", True): p.astream,
            ("generate", True): p.agenerate,
        }[(run.op, is_async)]
        call = GenerationCall(
            operation=run.op,
            request=req,
            provider=p,
            is_async=is_async,
            proceed=method,
            config=crew.config,
            emit=crew.emit,
        )
    return crew.hooks.generate(call)


def call_once(run: Run, cand: Candidate, req: Any) -> Any:
    """One call of a chat or embeddings request: the finished response, or a ProviderError."""
    t0 = time.monotonic()
    balancer = run.crew.balancer
    balancer.enter(cand)
    try:
        resp = invoke(run, cand, req, False)
    except Exception as exc:
        raise run.failed_try(cand, exc, t0)  # noqa: B904 (keeps its own cause)
    finally:
        balancer.leave(cand)
    return run.finish(resp, cand, t0)


async def acall_once(run: Run, cand: Candidate, req: Any) -> Any:
    """The async :func:`call_once`."""
    t0 = time.monotonic()
    balancer = run.crew.balancer
    balancer.enter(cand)
    try:
        resp = await invoke(run, cand, req, True)
    except Exception as exc:
        raise run.failed_try(cand, exc, t0)  # noqa: B904 (keeps its own cause)
    finally:
        balancer.leave(cand)
    return run.finish(resp, cand, t0)


def attempts(run: Run, cand: Candidate, once: Callable[[], _T]) -> _T:
    """Call ``once``; after a retryable failure, retry it under tenacity."""
    try:
        return once()
    except ProviderError as first:
        if not run.should_retry(cand, first):
            raise
        time.sleep(_first_wait(run, cand, first))
    for attempt in _retrying(run, cand, False):
        with attempt:
            return once()
    raise AssertionError("tenacity ended without a result or an error")  # pragma: no cover


async def aattempts(run: Run, cand: Candidate, once: Callable[[], Awaitable[_T]]) -> _T:
    """The async :func:`attempts`."""
    try:
        return await once()
    except ProviderError as first:
        if not run.should_retry(cand, first):
            raise
        import asyncio

        await asyncio.sleep(_first_wait(run, cand, first))
    async for attempt in _retrying(run, cand, True):
        with attempt:
            return await once()
    raise AssertionError("tenacity ended without a result or an error")  # pragma: no cover


def _first_wait(run: Run, cand: Candidate, exc: ProviderError) -> float:
    wait = Wait(retry_cfg(cand)).delay(exc, 1)
    run.retrying(cand, wait)
    return wait


def _retrying(run: Run, cand: Candidate, is_async: bool) -> Any:
    """tenacity for the retries after the first failed call (already waited for)."""
    import tenacity

    cfg = retry_cfg(cand)
    kw: dict[str, Any] = dict(
        stop=tenacity.stop_after_attempt(max(1, cfg.max_attempts) - 1),
        wait=Wait(cfg, offset=1),
        retry=tenacity.retry_if_exception(lambda e: run.should_retry(cand, e)),
        before_sleep=lambda state: run.retrying(
            cand, state.next_action.sleep if state.next_action else 0.0
        ),
        reraise=True,
    )
    return tenacity.AsyncRetrying(**kw) if is_async else tenacity.Retrying(**kw)


def first_answer(run: Run) -> Any:
    """The response of the first candidate that answers (chat or embeddings)."""
    while (cand := run.next()) is not None:
        req = run.request_for(cand)
        try:
            return attempts(run, cand, functools.partial(call_once, run, cand, req))
        except Unsupported:
            continue
        except ProviderError as exc:
            run.give_up(cand, exc)
    raise run.all_failed()


async def afirst_answer(run: Run) -> Any:
    """The async :func:`first_answer`."""
    while (cand := run.next()) is not None:
        req = run.request_for(cand)
        try:
            return await aattempts(run, cand, functools.partial(acall_once, run, cand, req))
        except Unsupported:
            continue
        except ProviderError as exc:
            run.give_up(cand, exc)
    raise run.all_failed()
