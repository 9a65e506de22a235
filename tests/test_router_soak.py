"""Soak: 1,000 requests (sync, then async), 50 in flight, over a chain of three fakes that
fail 30 % of the calls.

Each fake decides a call's fault from (request number, provider, try number) with a seeded
generator, so the test knows, for every request, exactly which attempts the policy makes
(retry a retryable fault once, fail over at once on a 429 when a later provider exists,
never retry 401 or an unreadable answer) and which provider answers. It checks that every
request ends in the right answer or an ``AllProvidersFailed`` naming every attempt, that
no answer is lost or served twice, and that the attempt list matches the policy exactly.
Cooldowns are switched off here (they depend on timing); the matrix covers them.
"""

from __future__ import annotations

import asyncio
import collections
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from llmcore.errors import AllProvidersFailed
from llmcore.testing.fakes.base import RecordedRequest, Reply
from llmcore.testing.fakes.openai import OpenAIFake
from router_kit import Api, Events, chain

N = 1000
IN_FLIGHT = 50
FAULT_RATE = 0.3
MAX_ATTEMPTS = 2
PROVIDERS = ("a", "b", "c")
#: fault → (reply, error class the attempt records, retryable)
FAULTS: dict[str, tuple[Reply, str, bool]] = {
    "reset": (Reply(reset=True), "ProviderConnectionError", True),
    "500": (Reply(status=500), "ResponseError", True),
    "503": (Reply(status=503), "ResponseError", True),
    "429": (Reply(status=429), "RateLimitError", True),
    "malformed": (Reply(body=b"<html>not json"), "ResponseError", False),
    "401": (Reply(status=401), "AuthenticationError", False),
}
KINDS = sorted(FAULTS)


def fault(n: int, provider: int, attempt: int) -> str | None:
    rng = random.Random(f"{n}:{provider}:{attempt}")
    return rng.choice(KINDS) if rng.random() < FAULT_RATE else None


def expected(n: int) -> tuple[list[tuple[str, str | None]], str | None]:
    """The attempts (provider, error class or None) the policy makes, and who answers."""
    out: list[tuple[str, str | None]] = []
    for i, name in enumerate(PROVIDERS):
        for t in range(1, MAX_ATTEMPTS + 1):
            f = fault(n, i, t)
            if f is None:
                out.append((name, None))
                return out, name
            _, error, retryable = FAULTS[f]
            out.append((name, error))
            last_provider = i == len(PROVIDERS) - 1
            if not retryable or (f == "429" and not last_provider):
                break
    return out, None


class ScriptedFake(OpenAIFake):
    """Answers ``req-N`` prompts with the fault ``fault(N, index, try)`` or a tagged answer."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index
        self.tries: collections.Counter[int] = collections.Counter()
        self.served: collections.Counter[int] = collections.Counter()
        self.faults: collections.Counter[str] = collections.Counter()
        self.guard = threading.Lock()

    def start(self) -> ScriptedFake:
        # 50 clients connect at once: the stock listen backlog (5) would drop SYNs and add
        # connection faults this test did not inject.
        from llmcore.testing.fakes import base

        class Server(base._Server):
            request_queue_size = 256

        self._server = Server((self._host, self._port), base.Handler)
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def next_reply(self, req: RecordedRequest) -> Reply:
        n = int(req.json["messages"][-1]["content"].removeprefix("req-"))
        with self.guard:
            self.requests.append(req)
            self.tries[n] += 1
            f = fault(n, self.index, self.tries[n])
            if f is None:
                self.served[n] += 1
                return Reply(text=f"answer {n} from {PROVIDERS[self.index]}")
            self.faults[f] += 1
            return FAULTS[f][0]


def _check(n: int, outcome: Any, fakes: list[ScriptedFake]) -> int:
    """Assert one request's outcome against the policy; return its attempt count."""
    want, who = expected(n)
    if who is None:
        assert isinstance(outcome, AllProvidersFailed), (n, outcome)
        attempts = outcome.attempts
        text = str(outcome)
        for p in {p for p, _ in want}:
            assert f"  - {p}/m1:" in text  # the error names every provider it tried
    else:
        assert not isinstance(outcome, BaseException), (n, outcome)
        assert outcome.content == f"answer {n} from {who}" and outcome.provider == who
        attempts = outcome.attempts
    got = [(a.provider, None if a.ok else a.error_type) for a in attempts]
    assert got == want, (n, got, want)
    served = sum(f.served[n] for f in fakes)
    assert served == (1 if who else 0), (n, served)  # never answered twice
    return len(attempts)


def _start() -> list[ScriptedFake]:
    return [ScriptedFake(i).start() for i in range(len(PROVIDERS))]


def _config(fakes: list[ScriptedFake]) -> str:
    return chain(
        [(p, f.base_url) for p, f in zip(PROVIDERS, fakes, strict=True)],
        max_attempts=MAX_ATTEMPTS,
        routing="state: memory, cooldown: {rate_limit_seconds: 0, failure_threshold: 1000000}",
    )


def _report(
    label: str,
    outcomes: list[Any],
    attempts: int,
    fakes: list[ScriptedFake],
    seconds: float,
    events: Events,
) -> None:
    faults = sum(sum(f.faults.values()) for f in fakes)
    calls = sum(len(f.requests) for f in fakes)
    failed = sum(isinstance(o, AllProvidersFailed) for o in outcomes)
    assert len(events.kinds("attempt")) == attempts
    assert len([e for e in events.kinds("request")]) == N
    print(
        f"\nsoak {label}: requests={N} answered={N - failed} all_failed={failed} "
        f"calls={calls} injected_faults={faults} ({faults / calls:.0%}) attempts={attempts} "
        f"retries={len(events.kinds('retry'))} failovers={len(events.kinds('failover'))} "
        f"lost=0 duplicated=0 in {seconds:.1f}s"
    )


@pytest.mark.slow
def test_soak_sync(make_client: Any) -> None:
    fakes = _start()
    events = Events()
    client = make_client(_config(fakes), events)
    try:

        def one(n: int) -> Any:
            try:
                return client.chat(f"req-{n}")
            except AllProvidersFailed as exc:
                return exc

        t0 = time.monotonic()
        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            outcomes = list(pool.map(one, range(N)))
        seconds = time.monotonic() - t0
        assert len(outcomes) == N  # none lost
        attempts = sum(_check(n, o, fakes) for n, o in enumerate(outcomes))
        _report("sync", outcomes, attempts, fakes, seconds, events)
    finally:
        for f in fakes:
            f.stop()


@pytest.mark.slow
async def test_soak_async(make_client: Any) -> None:
    fakes = _start()
    events = Events()
    api = Api(make_client(_config(fakes), events, async_=True), True)
    gate = asyncio.Semaphore(IN_FLIGHT)
    base = 10_000  # request numbers of their own: other faults than the sync run

    async def one(n: int) -> Any:
        async with gate:
            try:
                return await api.chat(f"req-{n}")
            except AllProvidersFailed as exc:
                return exc

    try:
        t0 = time.monotonic()
        outcomes = await asyncio.gather(*(one(base + i) for i in range(N)))
        seconds = time.monotonic() - t0
        assert len(outcomes) == N
        attempts = sum(_check(base + i, o, fakes) for i, o in enumerate(outcomes))
        _report("async", outcomes, attempts, fakes, seconds, events)
    finally:
        await api.close()
        for f in fakes:
            f.stop()
