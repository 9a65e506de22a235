"""The provider contract suite: the behaviour every llmcore provider must show.

Every API provider (the project's own and third parties') runs this same suite against a
fake server that speaks its wire format. It checks what the router and the CLI rely on:
answers, streams, usage, async calls, request options, and the mapping of every failure
(HTTP statuses, timeouts, refused connections, broken bodies, cut streams) onto
llmcore's error hierarchy, with no API key ever leaking into an error.

How to use it
-------------
Subclass :class:`ProviderContract` in a test module of your plugin, name the class
``Test...`` so pytest collects it, and give it three things::

    import pytest
    from llmcore.testing.contract import ProviderContract
    from llmcore.testing.fakes import OpenAIFake

    from llmcore_foo import FooProvider


    class TestFooContract(ProviderContract):
        provider_class = FooProvider
        model = "fake-model"

        @pytest.fixture
        def fake(self):
            with OpenAIFake() as server:
                yield server

        def base_url(self, fake):          # where the provider should point
            return fake.base_url           # e.g. ".../v1" for OpenAI-style servers

The default ``make_provider`` fixture builds ``provider_class(ProviderConfig(...))`` with
``base_url(fake)``, ``models=[model]`` and :meth:`ProviderContract.provider_options`, and
closes every provider it made. It is called as ``make_provider(fake, **overrides)`` where
the overrides are :class:`~llmcore.config.ProviderConfig` fields (``timeout``, ``api_key``,
``base_url``); override the fixture when your provider needs more set-up, but keep
honouring those three.

Where wire formats differ, override the small hooks instead of the tests:

* :meth:`ProviderContract.sent_options` reads temperature, top_p, seed, max_tokens and
  stop back out of a recorded request body (OpenAI: top level; Ollama: ``options``).
* :attr:`ProviderContract.not_found_error` is the message the server gives for an
  unknown model.
* :meth:`ProviderContract.auth_header` is the header (lower-case name) a key is sent in.
* :attr:`ProviderContract.stream_usage_exact`: set False when your server cannot report
  usage in a stream and the provider counts it itself (then it must still be > 0).
* :attr:`ProviderContract.unsupported_options`: the request options your API has no
  parameter for (``{"seed"}`` for Anthropic). The options test then checks that they are
  *not* sent, instead of checking that they arrive.
* :attr:`ProviderContract.hostile_stream_unit` / ``hostile_stream_type``: one chunk of
  your stream format and its content type, for the malicious-server kit
  (:mod:`llmcore.testing.hostile`), which every provider runs whole, sync and async:
  each fault must end in a typed llmcore error within its deadline, memory bounded.

The suite uses only :meth:`FakeServer.push` with :class:`Reply` and ``fake.requests``,
so any fake built on :class:`~llmcore.testing.fakes.FakeServer` fits. To extend the
contract with backend-specific tests, add test methods to your subclass.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest

from ..config import Limits, ProviderConfig, Timeouts
from ..errors import (
    AuthenticationError,
    ModelNotFoundError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    ResponseError,
)
from ..provider import Provider
from ..types import ChatRequest, ChatResponse, Message, ModelInfo, StreamChunk
from .fakes.base import FakeServer, Reply
from .hostile import FAULTS, OPENAI_STREAM_UNIT, HostileServer

__all__ = ["ProviderContract", "dead_url"]

MakeProvider = Callable[..., Provider]

#: A key shaped like no well-known key, so only llmcore's registered-secret redaction
#: (not the pattern fallback) can keep it out of messages.
CONTRACT_KEY = "contract-key-7f3a9c1e5b"


def dead_url(fake_url: str) -> str:
    """``fake_url`` with its port swapped for one that nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # The socket is closed: connecting now is refused at once (nothing listens there).
    scheme, _, rest = fake_url.partition("://")
    _hostport, slash, path = rest.partition("/")
    return f"{scheme}://127.0.0.1:{port}{slash}{path}"


def _request(model: str, prompt: str = "Say hello.", **kw: Any) -> ChatRequest:
    return ChatRequest(messages=[Message("user", prompt)], model=model, **kw)


# -- the malicious-server kit ------------------------------------------------------------------
#: Deadlines and limits the kit runs under: small, so each fault ends in seconds.
HOSTILE_TIMEOUT = Timeouts(connect=2.0, read=1.0, write=2.0, pool=2.0, first_token=1.0, total=3.0)
HOSTILE_LIMITS = Limits(max_response_bytes=1 << 20, max_line_bytes=64 << 10, retry_after_cap=600.0)
#: Generous: a hang detector on a loaded machine, not a speed measurement.
HOSTILE_GRACE_S = 15.0
#: The most the process's peak memory may grow in one case (the unbounded client grew by
#: gigabytes on the gzip bomb and the endless line).
HOSTILE_MEMORY_BYTES = 256 << 20

#: fault -> the error class it must end in (for a chat and for a stream).
HOSTILE_EXPECTED: dict[str, type[ProviderError]] = {
    "trickle": ProviderTimeoutError,
    "silence": ProviderTimeoutError,
    "endless_line": ResponseError,
    "endless_stream": ProviderError,
    "keepalive_only": ProviderTimeoutError,
    "oversize": ResponseError,
    "gzip_bomb": ResponseError,
    "redirect": ResponseError,
    "huge_error_page": ResponseError,
    "unknown_encoding": ResponseError,
    "bad_utf8": ResponseError,
    "error_in_200": ResponseError,
    "absurd_retry_after": RateLimitError,
    "absurd_retry_after_503": ResponseError,
}


def _peak_rss() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


class HostileKit:
    """Mixed into :class:`ProviderContract`: every fault of the kit, chat and stream, sync
    and async."""

    model: ClassVar[str]
    hostile_stream_unit: ClassVar[bytes]
    hostile_stream_type: ClassVar[str]

    @pytest.fixture
    def hostile(self) -> Iterator[HostileServer]:
        with HostileServer(
            stream_unit=self.hostile_stream_unit, stream_type=self.hostile_stream_type
        ) as server:
            yield server

    @pytest.mark.parametrize("mode", ["sync", "async"])
    @pytest.mark.parametrize("call", ["chat", "stream"])
    @pytest.mark.parametrize("fault", FAULTS)
    def test_hostile_server(
        self, hostile: HostileServer, make_provider: MakeProvider, fault: str, call: str, mode: str
    ) -> None:
        hostile.fault = fault
        p = make_provider(hostile, timeout=HOSTILE_TIMEOUT, limits=HOSTILE_LIMITS)
        request = _request(self.model)
        before = _peak_rss()
        t0 = time.monotonic()
        err = _run_to_error(p, request, call, mode)
        elapsed = time.monotonic() - t0
        expected = HOSTILE_EXPECTED[fault]
        assert isinstance(err, expected), (
            f"{fault}: expected {expected.__name__}, got {type(err).__name__}: {err!r}"
        )
        assert err.provider == p.name
        assert elapsed < HOSTILE_TIMEOUT.total + HOSTILE_GRACE_S, (
            f"{fault}: took {elapsed:.1f}s, past every deadline"
        )
        grew = _peak_rss() - before
        assert grew < HOSTILE_MEMORY_BYTES, f"{fault}: peak memory grew by {grew >> 20} MiB"
        _check_fault_details(fault, err, hostile)


def _run_to_error(p: Provider, request: ChatRequest, call: str, mode: str) -> BaseException:
    async def arun() -> None:
        try:
            if call == "chat":
                await p.achat(request)
            else:
                async for _ in p.astream(request):
                    pass
        finally:
            await p.aclose()

    try:
        if mode == "async":
            asyncio.run(arun())
        elif call == "chat":
            p.chat(request)
        else:
            for _ in p.stream(request):
                pass
    except Exception as exc:  # the case passes only with the right typed error
        return exc
    raise AssertionError(f"{call} ({mode}) against a hostile server returned normally")


def _check_fault_details(fault: str, err: BaseException, hostile: HostileServer) -> None:
    text = str(err)
    if fault == "redirect":
        assert "127.0.0.2" in text, f"the redirect's Location is not named: {text}"
        assert hostile.elsewhere.connections == 0, "something was sent to the other host"
    elif fault == "huge_error_page":
        assert getattr(err, "status", None) == 500 and getattr(err, "retryable", False), (
            f"a huge error page hid the 500: {text}"
        )
    elif fault == "unknown_encoding":
        assert "br" in text, f"the unexpected encoding is not named: {text}"
    elif fault == "bad_utf8":
        assert "UTF-8" in text, f"invalid UTF-8 not named as such: {text}"
    elif fault == "error_in_200":
        assert "hostile says no" in text, f"the server's own message is hidden: {text}"
    elif fault in ("absurd_retry_after", "absurd_retry_after_503"):
        after = getattr(err, "retry_after", None)
        assert after is not None and 0 <= after <= HOSTILE_LIMITS.retry_after_cap
    elif fault in ("oversize", "gzip_bomb", "endless_line"):
        assert "larger than" in text, f"the size limit is not named: {text}"


class ProviderContract(HostileKit):
    """Base class of a provider's contract tests; see the module docstring for use."""

    #: The provider class under test.
    provider_class: ClassVar[type[Provider]]
    #: The model name sent with every request (and expected in ``models()``).
    model: ClassVar[str] = "fake-model"
    #: The error text an unknown model gets from the real server.
    not_found_error: ClassVar[str] = "model 'no-such-model' not found"
    #: False when the provider counts stream usage itself instead of reading it.
    stream_usage_exact: ClassVar[bool] = True
    #: Request options (of temperature, top_p, seed, max_tokens, stop) the API does not have.
    unsupported_options: ClassVar[frozenset[str]] = frozenset()
    #: One chunk of the provider's stream format, and the stream's content type (kit).
    hostile_stream_unit: ClassVar[bytes] = OPENAI_STREAM_UNIT
    hostile_stream_type: ClassVar[str] = "text/event-stream"

    # -- what a subclass provides ----------------------------------------------------
    @pytest.fixture
    def fake(self) -> Iterator[FakeServer]:
        raise NotImplementedError("a ProviderContract subclass must define the `fake` fixture")

    def base_url(self, fake: FakeServer) -> str:
        """The base URL the provider is configured with (default: the fake's root)."""
        return fake.url

    def provider_options(self) -> dict[str, Any]:
        """The provider's ``options`` section (its ``Options`` class keys)."""
        return {}

    def sent_options(self, body: dict[str, Any]) -> dict[str, Any]:
        """llmcore's option names → the values found in a recorded request body."""
        return {k: body.get(k) for k in ("temperature", "top_p", "seed", "max_tokens", "stop")}

    def sent_messages(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        return list(body.get("messages") or [])

    def auth_header(self, key: str) -> tuple[str, str]:
        return ("authorization", f"Bearer {key}")

    @pytest.fixture
    def make_provider(self) -> Iterator[MakeProvider]:
        made: list[Provider] = []

        def make(fake: FakeServer, **overrides: Any) -> Provider:
            fields: dict[str, Any] = {
                "name": "contract",
                "plugin": self.provider_class.type_name,
                "base_url": self.base_url(fake),
                "models": [self.model],
                "options": self.provider_options(),
                "timeout": Timeouts(connect=2.0, read=10.0, write=10.0, pool=2.0),
            }
            fields.update(overrides)
            provider = self.provider_class(ProviderConfig(**fields))
            made.append(provider)
            return provider

        yield make
        for p in made:
            p.close()

    # -- helpers -------------------------------------------------------------------------
    def _last_body(self, fake: FakeServer) -> dict[str, Any]:
        assert fake.requests, "the provider sent no request to the fake server"
        body = fake.requests[-1].json
        assert isinstance(body, dict), f"request body is not a JSON object: {body!r}"
        return body

    @staticmethod
    def _collect(chunks: Iterator[StreamChunk]) -> list[StreamChunk]:
        out = []
        for c in chunks:
            assert isinstance(c, StreamChunk), f"stream yielded {type(c).__name__}"
            out.append(c)
        return out

    # -- answers -------------------------------------------------------------------------
    def test_chat_returns_content_usage_finish_reason(
        self, fake: FakeServer, make_provider: MakeProvider
    ) -> None:
        fake.push(Reply(text="Hello there, contract.", usage=(11, 4)))
        p = make_provider(fake)
        resp = p.chat(_request(self.model, "Say hello to the contract."))
        assert isinstance(resp, ChatResponse)
        assert resp.content == "Hello there, contract."
        assert (resp.usage.input_tokens, resp.usage.output_tokens) == (11, 4)
        assert resp.finish_reason == "stop"
        assert resp.model, "the response names no model"
        assert resp.provider == p.name
        messages = self.sent_messages(self._last_body(fake))
        assert messages and messages[-1].get("content") == "Say hello to the contract."
        assert messages[-1].get("role") == "user"

    def test_finish_reason_length_is_reported(
        self, fake: FakeServer, make_provider: MakeProvider
    ) -> None:
        fake.push(Reply(text="cut short", finish_reason="length"))
        resp = make_provider(fake).chat(_request(self.model, max_tokens=2))
        assert resp.finish_reason == "length"

    def test_stream_concatenates_to_the_text_and_ends_with_finish_reason(
        self, fake: FakeServer, make_provider: MakeProvider
    ) -> None:
        text = "one two three four five"
        fake.push(Reply(text=text, usage=(6, 5)))
        chunks = self._collect(make_provider(fake).stream(_request(self.model, stream=True)))
        assert "".join(c.content for c in chunks) == text
        assert sum(1 for c in chunks if c.content) >= 2, "the answer came in one piece"
        assert chunks[-1].finish_reason == "stop"
        assert all(c.finish_reason is None for c in chunks[:-1])
        usages = [c.usage for c in chunks if c.usage is not None]
        assert usages, "no chunk carried usage"
        if self.stream_usage_exact:
            assert (usages[-1].input_tokens, usages[-1].output_tokens) == (6, 5)
        else:
            assert usages[-1].output_tokens > 0

    def test_async_chat(self, fake: FakeServer, make_provider: MakeProvider) -> None:
        fake.push(Reply(text="async hello", usage=(3, 2)))
        p = make_provider(fake)

        async def run() -> ChatResponse:
            try:
                return await p.achat(_request(self.model))
            finally:
                await p.aclose()

        resp = asyncio.run(run())
        assert resp.content == "async hello"
        assert (resp.usage.input_tokens, resp.usage.output_tokens) == (3, 2)
        assert resp.finish_reason == "stop"

    def test_async_stream(self, fake: FakeServer, make_provider: MakeProvider) -> None:
        text = "streaming without blocking the loop"
        fake.push(Reply(text=text))
        p = make_provider(fake)

        async def run() -> list[StreamChunk]:
            try:
                return [c async for c in p.astream(_request(self.model, stream=True))]
            finally:
                await p.aclose()

        chunks = asyncio.run(run())
        assert "".join(c.content for c in chunks) == text
        assert chunks[-1].finish_reason == "stop"

    def test_async_calls_run_concurrently_on_one_provider(
        self, fake: FakeServer, make_provider: MakeProvider
    ) -> None:
        fake.push(*[Reply(text=f"answer {i}") for i in range(8)])
        p = make_provider(fake)

        async def run() -> list[ChatResponse]:
            try:
                return await asyncio.gather(*[p.achat(_request(self.model)) for _ in range(8)])
            finally:
                await p.aclose()

        answers = sorted(r.content for r in asyncio.run(run()))
        assert answers == sorted(f"answer {i}" for i in range(8))

    def test_request_options_reach_the_server(
        self, fake: FakeServer, make_provider: MakeProvider
    ) -> None:
        fake.push(Reply(text="ok"))
        make_provider(fake).chat(
            _request(self.model, temperature=0.25, top_p=0.5, seed=42, max_tokens=17, stop=["END"])
        )
        body = self._last_body(fake)
        assert body.get("model") == self.model
        sent = self.sent_options(body)
        wanted = {"temperature": 0.25, "top_p": 0.5, "seed": 42, "max_tokens": 17, "stop": ["END"]}
        unknown = set(self.unsupported_options) - set(wanted)
        assert not unknown, f"unsupported_options names no request option: {unknown}"
        for key, value in wanted.items():
            if key in self.unsupported_options:
                assert sent.get(key) is None, f"{key} is declared unsupported but was sent"
            else:
                assert sent.get(key) == value, f"{key}: sent {sent.get(key)!r}, not {value!r}"

    def test_models_lists_model_info(self, fake: FakeServer, make_provider: MakeProvider) -> None:
        p = make_provider(fake)
        models = p.models()
        assert models and all(isinstance(m, ModelInfo) for m in models)
        assert self.model in [m.name for m in models]
        assert all(m.provider == p.name for m in models)

    # -- errors ----------------------------------------------------------------------------
    def test_401_is_an_authentication_error(
        self, fake: FakeServer, make_provider: MakeProvider
    ) -> None:
        fake.push(Reply(status=401, error="invalid api key"))
        p = make_provider(fake)
        with pytest.raises(AuthenticationError) as info:
            p.chat(_request(self.model))
        assert info.value.status == 401
        assert info.value.provider == p.name
        assert not info.value.retryable

    def test_404_model_is_model_not_found_with_a_hint(
        self, fake: FakeServer, make_provider: MakeProvider
    ) -> None:
        fake.push(Reply(status=404, error=self.not_found_error))
        with pytest.raises(ModelNotFoundError) as info:
            make_provider(fake).chat(_request("no-such-model"))
        assert info.value.hint, "a missing model must come with a hint on how to get it"
        assert not info.value.retryable

    def test_429_is_a_rate_limit_with_retry_after(
        self, fake: FakeServer, make_provider: MakeProvider
    ) -> None:
        fake.push(Reply(status=429, error="slow down", headers={"Retry-After": "7"}))
        with pytest.raises(RateLimitError) as info:
            make_provider(fake).chat(_request(self.model))
        assert info.value.retry_after == 7.0
        assert info.value.retryable

    def test_429_on_a_stream_is_a_rate_limit(
        self, fake: FakeServer, make_provider: MakeProvider
    ) -> None:
        fake.push(Reply(status=429, error="slow down", headers={"Retry-After": "3"}))
        with pytest.raises(RateLimitError) as info:
            list(make_provider(fake).stream(_request(self.model, stream=True)))
        assert info.value.retry_after == 3.0

    @pytest.mark.parametrize("status", [500, 502, 503])
    def test_5xx_is_a_retryable_response_error(
        self, fake: FakeServer, make_provider: MakeProvider, status: int
    ) -> None:
        fake.push(Reply(status=status, error="the server is on fire"))
        with pytest.raises(ResponseError) as info:
            make_provider(fake).chat(_request(self.model))
        assert info.value.status == status
        assert info.value.retryable

    def test_connection_refused_is_a_connection_error(
        self, fake: FakeServer, make_provider: MakeProvider
    ) -> None:
        url = dead_url(self.base_url(fake))
        p = make_provider(fake, base_url=url)
        with pytest.raises(ProviderConnectionError) as info:
            p.chat(_request(self.model))
        assert info.value.retryable
        port = url.split("://", 1)[1].split("/", 1)[0]
        assert port in str(info.value), "the error should say which address was refused"

    def test_connection_reset_is_a_retryable_provider_error(
        self, fake: FakeServer, make_provider: MakeProvider
    ) -> None:
        fake.push(Reply(reset=True))
        with pytest.raises(ProviderError) as info:
            make_provider(fake).chat(_request(self.model))
        assert info.value.retryable

    def test_slow_answer_is_a_timeout(self, fake: FakeServer, make_provider: MakeProvider) -> None:
        fake.push(Reply(text="too late", delay=1.5))
        p = make_provider(fake, timeout=Timeouts(connect=2.0, read=0.3, write=2.0, pool=2.0))
        with pytest.raises(ProviderTimeoutError) as info:
            p.chat(_request(self.model))
        assert info.value.retryable

    def test_malformed_json_is_a_response_error_quoting_the_body(
        self, fake: FakeServer, make_provider: MakeProvider
    ) -> None:
        fake.push(Reply(body=b"<html>upstream proxy exploded</html>"))
        with pytest.raises(ResponseError) as info:
            make_provider(fake).chat(_request(self.model))
        assert "<html>upstream proxy" in str(info.value)

    def test_stream_cut_midway_raises_never_a_short_answer(
        self, fake: FakeServer, make_provider: MakeProvider
    ) -> None:
        fake.push(Reply(text="one two three four five six seven eight", cut_after=3))
        received: list[StreamChunk] = []
        with pytest.raises(ProviderError):
            for chunk in make_provider(fake).stream(_request(self.model, stream=True)):
                received.append(chunk)
        assert not any(c.finish_reason for c in received), "a cut stream reported completion"

    def test_async_stream_cut_midway_raises(
        self, fake: FakeServer, make_provider: MakeProvider
    ) -> None:
        fake.push(Reply(text="one two three four five six seven eight", cut_after=3))
        p = make_provider(fake)

        async def run() -> None:
            try:
                async for _ in p.astream(_request(self.model, stream=True)):
                    pass
            finally:
                await p.aclose()

        with pytest.raises(ProviderError):
            asyncio.run(run())

    def test_api_key_is_sent_and_never_leaks(
        self, fake: FakeServer, make_provider: MakeProvider
    ) -> None:
        # Servers echo keys back ("Incorrect API key provided: ..."); that must not escape.
        fake.push(Reply(status=401, error=f"Incorrect API key provided: {CONTRACT_KEY}"))
        p = make_provider(fake, api_key=CONTRACT_KEY)
        with pytest.raises(AuthenticationError) as info:
            p.chat(_request(self.model))
        name, value = self.auth_header(CONTRACT_KEY)
        sent = {k.lower(): v for k, v in fake.requests[-1].headers.items()}
        assert sent.get(name) == value, f"the key was not sent in the {name} header"
        texts = [str(info.value), repr(info.value), repr(p), str(info.value.hint)]
        # The other failure paths must not carry it either.
        fake.push(Reply(body=b"not json " + CONTRACT_KEY.encode()))
        with pytest.raises(ProviderError) as other:
            p.chat(_request(self.model))
        texts += [str(other.value), repr(other.value)]
        for text in texts:
            assert CONTRACT_KEY not in text, f"API key leaked: {text!r}"
