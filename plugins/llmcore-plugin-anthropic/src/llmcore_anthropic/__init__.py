"""llmcore plugin: Anthropic's Messages API (Claude), natively.

The wire format (request bodies, answers, the SSE event stream, errors) lives in
:mod:`llmcore_anthropic.wire`, which does no I/O. The provider class below only connects
it to llmcore's sans-IO provider base, whose transports (httpcore sync, asyncio async) move
the bytes with one set of limits, deadlines and error rules for every provider.

Config: ``plugin: anthropic``; ``base_url`` defaults to https://api.anthropic.com (the API
root, *without* ``/v1``); the key comes from ``ANTHROPIC_API_KEY`` unless ``api_key_env``
or ``api_key`` says otherwise. Hosted, so requests are priced from the model registry.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import attrs
import llmcore
from llmcore import ChatRequest, ChatResponse, HTTPRequest, HTTPResponse, ModelInfo

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


class AnthropicProvider(llmcore.Provider):
    """Claude through ``POST /v1/messages`` (plain and streamed) and ``GET /v1/models``.

    Only the wire format is written here (all in :mod:`llmcore_anthropic.wire`); chat,
    stream, their async twins, models and health come from :class:`llmcore.Provider`.
    """

    type_name: ClassVar[str] = "anthropic"
    default_base_url: ClassVar[str | None] = "https://api.anthropic.com"
    default_api_key_env: ClassVar[str | None] = "ANTHROPIC_API_KEY"
    local: ClassVar[bool] = False
    Options: ClassVar[type | None] = AnthropicOptions
    start_hint: ClassVar[str] = (
        "check base_url in llmcore.yaml (the API root, e.g. "
        "https://api.anthropic.com) and the network"
    )

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._warned: set[str] = set()

    def request_headers(self) -> dict[str, str]:
        o = self.options
        return {**wire.request_headers(self.api_key, o.anthropic_version, o.beta), **o.headers}

    def chat_request(self, request: ChatRequest, stream: bool) -> HTTPRequest:
        for k in wire.UNSUPPORTED:
            if getattr(request, k) is not None and k not in self._warned:
                self._warned.add(k)  # once per provider: a log line per call is noise
                log.warning(
                    "%s: the Anthropic API has no %r parameter; it is not sent", self.name, k
                )
        o = self.options
        body = wire.request_body(
            request,
            self.require_model(request),
            default_max_tokens=o.default_max_tokens,
            stream=stream,
            top_k=o.top_k,
            thinking_budget=o.thinking_budget,
            extra_body=o.extra_body,
        )
        return HTTPRequest(
            "POST", "/v1/messages", json=body, model=body.get("model"), timeout=request.timeout
        )

    def parse_chat(self, data: Any, request: ChatRequest) -> ChatResponse:
        if not wire.is_message(data):
            raise self.answer_error(data, "an Anthropic message", self.model_for(request))
        return wire.parse_message(data, self.name)

    def stream_decoder(self, request: ChatRequest) -> wire.EventStream:
        return wire.EventStream(self.name, self.limits.max_line_bytes, self.model_for(request))

    def models_request(self) -> HTTPRequest:
        return HTTPRequest("GET", "/v1/models?limit=1000")

    def parse_models(self, data: Any) -> list[ModelInfo]:
        return wire.parse_models(data, self.name)

    def error_for_status(
        self, response: HTTPResponse, request: HTTPRequest
    ) -> llmcore.ProviderError:
        return wire.error_for(
            self.name,
            request.model,
            response.status,
            response.body,
            response.headers,
            self.base_url,
            self.limits.retry_after_cap,
        )


#: Models the core's bundled registry does not list, priced here (USD per million tokens,
#: Anthropic's published prices; ``cached_input`` is the cache-read price).
MODEL_FACTS: dict[str, Any] = {
    "models": {
        "claude-3-haiku": {
            "aliases": ["claude-3-haiku-20240307"],
            "context": 200000,
            "capabilities": ["chat", "vision", "tools"],
            "price": {"input": 0.25, "output": 1.25, "cached_input": 0.03},
        },
    }
}


@llmcore.hookimpl
def llmcore_register_providers() -> list[type[llmcore.Provider]]:
    return [AnthropicProvider]


@llmcore.hookimpl
def llmcore_register_model_facts() -> dict[str, Any]:
    return MODEL_FACTS
