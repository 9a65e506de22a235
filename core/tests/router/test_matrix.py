"""The fault matrix: each injected fault in three scenarios (retry, failover, cooldown).

* retry: one provider, the fault once, then a good answer. Retryable faults are retried and
  answered; the others fail at once with one attempt.
* failover: provider ``a`` always faulty, ``b`` healthy: ``b`` answers after the number of
  calls to ``a`` the policy allows.
* cooldown: three requests over the same chain: a 429 cools ``a`` after the first request,
  repeated server trouble after at most two; auth and not-found never cool it down.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from llmcore.errors import AllProvidersFailed, StreamInterrupted
from llmcore.testing.contract import dead_url
from llmcore.testing.fakes.base import Reply
from llmcore.testing.fakes.openai import OpenAIFake
from router_kit import Api, Events, chain

TEXT = "alpha beta gamma delta"


@attrs.define
class Fault:
    name: str
    reply: Reply | None  # None: connection refused (nothing listens)
    error: str  # the error class the attempt records
    retryable: bool
    cools: str | None  # "rate" (429), "trouble" (failure threshold) or None
    stream: bool = False
    status: int | None = None


FAULTS = [
    Fault("refused", None, "ProviderConnectionError", False, "trouble"),
    Fault("reset", Reply(reset=True), "ProviderConnectionError", True, "trouble"),
    Fault("timeout", Reply(delay=0.6), "ProviderTimeoutError", True, "trouble"),
    Fault(
        "429-retry-after",
        Reply(status=429, headers={"Retry-After": "1"}),
        "RateLimitError",
        True,
        "rate",
        status=429,
    ),
    Fault("429", Reply(status=429), "RateLimitError", True, "rate", status=429),
    Fault("500", Reply(status=500), "ResponseError", True, "trouble", status=500),
    Fault("503", Reply(status=503), "ResponseError", True, "trouble", status=503),
    Fault("401", Reply(status=401), "AuthenticationError", False, None, status=401),
    Fault(
        "404-model",
        Reply(status=404, error="The model `m1` does not exist"),
        "ModelNotFoundError",
        False,
        None,
        status=404,
    ),
    Fault("malformed-json", Reply(body=b"not json"), "ResponseError", False, "trouble"),
    Fault(
        "stream-cut-before-first-chunk",
        Reply(text=TEXT, cut_after=1),
        "ProviderConnectionError",
        True,
        "trouble",
        stream=True,
    ),
    Fault(
        "stream-cut-after-first-chunk",
        Reply(text=TEXT, cut_after=3),
        "ProviderConnectionError",
        False,
        "trouble",
        stream=True,
    ),
]
IDS = [f.name for f in FAULTS]
MODES = [pytest.param(False, id="sync"), pytest.param(True, id="async")]
CUT_AFTER = "stream-cut-after-first-chunk"


@pytest.fixture
def fakes() -> Iterator[tuple[OpenAIFake, OpenAIFake]]:
    a = OpenAIFake(default=Reply(text=TEXT)).start()
    b = OpenAIFake(default=Reply(text="from b")).start()
    yield a, b
    a.stop()
    b.stop()


def _url(fault: Fault, fake: OpenAIFake) -> str:
    return dead_url(fake.base_url) if fault.reply is None else fake.base_url


async def _call(api: Api, fault: Fault) -> tuple[str | None, Any, Exception | None]:
    """One request in the fault's style: (answer text, attempts, error)."""
    if fault.stream:
        chunks, attempts, err = await api.stream()
        text = "".join(c.content for c in chunks)
        return (None if err else text), attempts, err
    try:
        resp = await api.chat()
    except (AllProvidersFailed, StreamInterrupted) as exc:
        return None, getattr(exc, "attempts", None), exc
    return resp.content, resp.attempts, None


def _client(make_client: Any, text: str, is_async: bool) -> tuple[Api, Events]:
    events = Events()
    return Api(make_client(text, events, async_=is_async), is_async), events


@pytest.mark.parametrize("is_async", MODES)
@pytest.mark.parametrize("fault", FAULTS, ids=IDS)
async def test_retry(fault: Fault, is_async: bool, fakes: Any, make_client: Any) -> None:
    a, _ = fakes
    if fault.reply is not None:
        a.push(fault.reply)
    api, events = _client(
        make_client, chain([("a", _url(fault, a))], max_attempts=2, timeout=0.3), is_async
    )
    text, attempts, err = await _call(api, fault)
    if fault.name == CUT_AFTER:
        # Text reached the caller: no retry, no restart; the partial text is handed back.
        assert isinstance(err, StreamInterrupted) and err.partial == "alpha beta "
        assert err.provider == "a" and len(a.requests) == 1
    elif fault.retryable:
        assert err is None and text == TEXT
        assert [(x.ok, x.error_type, x.retry) for x in attempts] == [
            (False, fault.error, 0),
            (True, None, 1),
        ]
        assert len(a.requests) == 2
        retry = events.kinds("retry")
        assert len(retry) == 1
        if fault.name == "429-retry-after":
            assert retry[0].duration_s == pytest.approx(1.0)  # Retry-After beats delay 0.001
        else:
            assert retry[0].duration_s == pytest.approx(0.001)
    else:
        assert isinstance(err, AllProvidersFailed)
        assert [(x.error_type, x.status) for x in err.attempts] == [(fault.error, fault.status)]
        assert len(a.requests) == (0 if fault.reply is None else 1)
        assert events.kinds("retry") == []
        if fault.name == "401":
            assert "configuration problem" in (err.attempts[0].hint or "")
            assert "configuration problem" in str(err)
    assert len(events.kinds("attempt")) == len(attempts or getattr(err, "attempts", []) or [1])
    await api.close()


@pytest.mark.parametrize("is_async", MODES)
@pytest.mark.parametrize("fault", FAULTS, ids=IDS)
async def test_failover(fault: Fault, is_async: bool, fakes: Any, make_client: Any) -> None:
    a, b = fakes
    if fault.reply is not None:
        a.default = fault.reply
    api, events = _client(
        make_client,
        chain([("a", _url(fault, a)), ("b", b.base_url)], max_attempts=2, timeout=0.3),
        is_async,
    )
    text, attempts, err = await _call(api, fault)
    if fault.name == CUT_AFTER:
        assert isinstance(err, StreamInterrupted) and err.partial == "alpha beta "
        assert b.requests == []  # never restarted elsewhere: no duplicated output
        await api.close()
        return
    assert err is None and text == "from b"
    # 429 fails over at once (b can answer now); refused is never retried.
    calls = 2 if fault.retryable and fault.cools != "rate" else 1
    assert [(x.provider, x.error_type) for x in attempts] == (
        [("a", fault.error)] * calls + [("b", None)]
    )
    assert len(a.requests) == (0 if fault.reply is None else calls)
    assert len(events.kinds("failover")) == 1
    assert events.kinds("failover")[0].provider == "a"
    assert len(events.kinds("attempt")) == len(attempts)
    await api.close()


@pytest.mark.parametrize("is_async", MODES)
@pytest.mark.parametrize(
    "fault", [f for f in FAULTS if f.name != CUT_AFTER], ids=[n for n in IDS if n != CUT_AFTER]
)
async def test_cooldown(fault: Fault, is_async: bool, fakes: Any, make_client: Any) -> None:
    a, b = fakes
    if fault.reply is not None:
        a.default = fault.reply
    routing = (
        "state: memory, cooldown: {rate_limit_seconds: 600, failure_threshold: 2, "
        "failure_seconds: 600}"
    )
    api, events = _client(
        make_client,
        chain(
            [("a", _url(fault, a)), ("b", b.base_url)], max_attempts=2, timeout=0.3, routing=routing
        ),
        is_async,
    )
    seen: list[list[Any]] = []
    calls_to_a: list[int] = []
    for _ in range(3):
        before = len(a.requests)
        text, attempts, err = await _call(api, fault)
        assert err is None and text == "from b"
        seen.append(attempts)
        calls_to_a.append(len(a.requests) - before)
    last = seen[-1]
    if fault.cools is None:
        assert not last[0].skipped and calls_to_a == [1, 1, 1]
        assert events.kinds("cooldown") == []
        return
    # Cooling: a is skipped with no network call, and the attempt says until when.
    assert last[0].skipped and last[0].error_type == "CoolingDown"
    assert last[0].cooldown_until is not None and last[0].duration_s == 0
    assert [x.provider for x in last] == ["a", "b"]
    assert calls_to_a[-1] == 0
    cooldowns = events.kinds("cooldown")
    assert len(cooldowns) == 1
    if fault.cools == "rate":
        assert calls_to_a[1:] == [0, 0]
        assert cooldowns[0].message.startswith("a/m1 ")  # the model of a, not all of a
        seconds = 1.0 if fault.name == "429-retry-after" else 600.0
        assert cooldowns[0].duration_s == pytest.approx(seconds)
    else:
        assert cooldowns[0].message.startswith("a ")  # the whole provider
        assert cooldowns[0].duration_s == pytest.approx(600.0)
    await api.close()


async def test_all_cooling_says_when_the_first_is_back(fakes: Any, make_client: Any) -> None:
    a, b = fakes
    a.default = Reply(status=429, headers={"Retry-After": "50"})
    b.default = Reply(status=429, headers={"Retry-After": "90"})
    api, _ = _client(make_client, chain([("a", a.base_url), ("b", b.base_url)]), False)
    with pytest.raises(AllProvidersFailed):
        await api.chat()
    n = len(a.requests) + len(b.requests)
    with pytest.raises(AllProvidersFailed) as info:
        await api.chat()
    assert len(a.requests) + len(b.requests) == n  # no network call at all
    assert all(x.skipped for x in info.value.attempts)
    text = str(info.value)
    assert "every candidate is cooling down; the first back is a in" in text
    assert "skipped (cooling down)" in text


@pytest.mark.parametrize("is_async", MODES)
@pytest.mark.parametrize("max_attempts", [1, 3])
async def test_retry_count_and_exponential_waits(
    max_attempts: int, is_async: bool, fakes: Any, make_client: Any
) -> None:
    a, _ = fakes
    a.default = Reply(status=503)
    text = chain([("a", a.base_url)], max_attempts=max_attempts).replace(
        "wait: fixed, delay: 0.001", "wait: exponential, delay: 0.01, max_delay: 0.015"
    )
    api, events = _client(make_client, text, is_async)
    with pytest.raises(AllProvidersFailed) as info:
        await api.chat()
    assert [x.retry for x in info.value.attempts] == list(range(max_attempts))
    assert len(a.requests) == max_attempts
    waits = [e.duration_s for e in events.kinds("retry")]
    assert waits == pytest.approx([0.01, 0.015][: max_attempts - 1])  # 0.01, then 0.02 capped
    await api.close()


@pytest.mark.parametrize("is_async", MODES)
async def test_stream_request_event_has_ttft_and_usage(
    is_async: bool, fakes: Any, make_client: Any
) -> None:
    a, _ = fakes
    api, events = _client(make_client, chain([("a", a.base_url)]), is_async)
    chunks, attempts, err = await api.stream()
    assert err is None and "".join(c.content for c in chunks) == TEXT
    assert [(x.provider, x.ok) for x in attempts] == [("a", True)]
    (req,) = events.kinds("request")
    assert req.operation == "stream" and req.ttft_s is not None
    assert 0 < req.ttft_s <= req.latency_s
    assert req.output_tokens == 4 and req.request_id == events.kinds("attempt")[0].request_id
    await api.close()
