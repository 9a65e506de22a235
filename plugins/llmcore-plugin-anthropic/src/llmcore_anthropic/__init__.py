"""llmcore plugin: Anthropic's Messages API (Claude), natively.

The wire format (request bodies, answers, the SSE event stream, errors) lives in
:mod:`llmcore_anthropic.wire`, which does no I/O. The provider class below only moves bytes:
it uses the core's pooled HTTP transport (httpx for sync calls, aiohttp for async ones) and
hands every body to ``wire``.

Config: ``plugin: anthropic``; ``base_url`` defaults to https://api.anthropic.com (the API
root, *without* ``/v1``); the key comes from ``ANTHROPIC_API_KEY`` unless ``api_key_env``
or ``api_key`` says otherwise. Hosted, so requests are priced from the model registry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar, NoReturn

import attrs
import llmcore
from llmcore import (
    ChatRequest,
    ChatResponse,
    EmbeddingResponse,
    ModelInfo,
    OpenAIProvider,
    ResponseError,
    StreamChunk,
)

from . import wire

LLMCORE_HOOK_API = "1"

__all__ = ["AnthropicOptions", "AnthropicProvider", "wire"]

log = logging.getLogger("llmcore.anthropic")


@attrs.define
class AnthropicOptions:
    """Extra config keys of the ``anthropic`` type."""

    #: Sent as ``anthropic-version``.
    anthropic_version: str = wire.API_VERSION
    #: Beta features, sent as ``anthropic-beta`` (comma-joined).
    beta: list[str] = attrs.field(factory=list)
    #: ``max_tokens`` when a request gives none (the API requires one).
    default_max_tokens: int = attrs.field(default=4096, validator=attrs.validators.ge(1))
    #: ``top_k`` sampling, sent with every request when set.
    top_k: int | None = None
    #: Extended thinking: the token budget (``thinking.budget_tokens``); off when unset.
    thinking_budget: int | None = None
    #: Extra HTTP headers for every request.
    headers: dict[str, str] = attrs.field(factory=dict)
    #: Keys merged into every request body.
    extra_body: dict[str, Any] = attrs.field(factory=dict)
    #: Most connections kept open (each of the sync and async pools).
    max_connections: int = 100


class AnthropicProvider(OpenAIProvider):
    """Claude through ``POST /v1/messages`` (plain and streamed) and ``GET /v1/models``.

    Subclasses the core's OpenAI-compatible provider only for its transport (pooled
    connections, timeouts, refused/cut connections mapped to llmcore's errors); every
    request and answer goes through :mod:`llmcore_anthropic.wire`.
    """

    type_name: ClassVar[str] = "anthropic"
    default_base_url: ClassVar[str | None] = "https://api.anthropic.com"
    default_api_key_env: ClassVar[str | None] = "ANTHROPIC_API_KEY"
    local: ClassVar[bool] = False
    Options: ClassVar[type | None] = AnthropicOptions
    start_hint: ClassVar[str] = ("check base_url in llmcore.yaml (the API root, e.g. "
                                 "https://api.anthropic.com) and the network")

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._warned: set[str] = set()

    @property
    def headers(self) -> dict[str, str]:
        if self._headers is None:
            o = self.options
            h = wire.request_headers(self.api_key, o.anthropic_version, o.beta)
            h.update(o.headers)
            self._headers = h
        return self._headers

    def body(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        dropped = [k for k in wire.UNSUPPORTED if getattr(request, k) is not None]
        for k in dropped:
            if k not in self._warned:  # once per provider: a log line per call is noise
                self._warned.add(k)
                log.warning("%s: the Anthropic API has no %r parameter; it is not sent",
                            self.name, k)
        o = self.options
        return wire.request_body(request, self.model_for(request),
                                 default_max_tokens=o.default_max_tokens, stream=stream,
                                 top_k=o.top_k, thinking_budget=o.thinking_budget,
                                 extra_body=o.extra_body)

    # -- the transport's hooks -----------------------------------------------------------
    def _raise_status(self, status: int, text: str, headers: Any,
                      body: dict[str, Any] | None) -> NoReturn:
        model = body.get("model") if body else None
        raise wire.error_for(self.name, model, status, text, headers, self.base_url)

    def _decode(self, raw: bytes) -> Any:
        import json

        try:
            return json.loads(raw)
        except ValueError:
            raise ResponseError(
                f"{self.name}: the server's answer is not valid JSON: "
                f"{raw[:wire.SNIPPET].decode('utf-8', 'replace')!r}", provider=self.name,
                hint="is base_url the Anthropic API root (https://api.anthropic.com, "
                     "without /v1)?") from None

    # -- chat ----------------------------------------------------------------------------
    def chat(self, request: ChatRequest) -> ChatResponse:
        t0 = time.monotonic()
        data = self._call_json("POST", "/v1/messages", self.body(request, False),
                               request.timeout)
        return wire.parse_message(data, self.name, time.monotonic() - t0)

    async def achat(self, request: ChatRequest) -> ChatResponse:
        t0 = time.monotonic()
        data = await self._acall_json("POST", "/v1/messages", self.body(request, False),
                                      request.timeout)
        return wire.parse_message(data, self.name, time.monotonic() - t0)

    def stream(self, request: ChatRequest) -> Iterator[StreamChunk]:
        body = self.body(request, True)
        decoder = wire.StreamDecoder(self.name, body.get("model"))
        lines = self._stream_lines("/v1/messages", body, request.timeout)
        try:
            for line in lines:
                yield from decoder.line(line)
                if decoder.done:
                    break
        finally:
            lines.close()  # the connection goes back to the pool now
        yield decoder.end()

    async def astream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        body = self.body(request, True)
        decoder = wire.StreamDecoder(self.name, body.get("model"))
        lines = self._astream_lines("/v1/messages", body, request.timeout)
        try:
            async for line in lines:
                for chunk in decoder.line(line):
                    yield chunk
                if decoder.done:
                    break
        finally:
            await lines.aclose()  # type: ignore[attr-defined]
        yield decoder.end()

    # -- models --------------------------------------------------------------------------
    def models(self) -> list[ModelInfo]:
        return wire.parse_models(self._call_json("GET", "/v1/models?limit=1000"), self.name)

    async def amodels(self) -> list[ModelInfo]:
        data = await self._acall_json("GET", "/v1/models?limit=1000")
        return wire.parse_models(data, self.name)

    # -- what the Messages API does not have ----------------------------------------------
    def generate(self, request: ChatRequest) -> ChatResponse:
        raise NotImplementedError("the Anthropic API has no raw text completion; use chat")

    async def agenerate(self, request: ChatRequest) -> ChatResponse:
        raise NotImplementedError("the Anthropic API has no raw text completion; use chat")

    def embed(self, texts: list[str], model: str | None = None) -> EmbeddingResponse:
        raise NotImplementedError("the Anthropic API has no embeddings endpoint")

    async def aembed(self, texts: list[str], model: str | None = None) -> EmbeddingResponse:
        raise NotImplementedError("the Anthropic API has no embeddings endpoint")


#: Models the core's bundled registry does not list, priced here (USD per million tokens,
#: Anthropic's published prices; ``cached_input`` is the cache-read price).
MODEL_FACTS: dict[str, Any] = {"models": {
    "claude-3-haiku": {"aliases": ["claude-3-haiku-20240307"], "context": 200000,
                       "capabilities": ["chat", "vision", "tools"],
                       "price": {"input": 0.25, "output": 1.25, "cached_input": 0.03}},
}}


@llmcore.hookimpl
def llmcore_register_providers() -> list[type[llmcore.Provider]]:
    return [AnthropicProvider]


@llmcore.hookimpl
def llmcore_register_model_facts() -> dict[str, Any]:
    return MODEL_FACTS
