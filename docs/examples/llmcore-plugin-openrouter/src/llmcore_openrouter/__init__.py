"""llmcore plugin: OpenRouter (https://openrouter.ai), one key for many hosted models.

OpenRouter speaks the OpenAI API, so the provider is :class:`llmcore.OpenAIProvider` with
OpenRouter's address and key variable, plus what OpenRouter adds: the optional
``HTTP-Referer`` and ``X-Title`` headers that name your app on its rankings, and
provider-routing preferences (which upstream providers serve a model, in which order).

Written as a third-party plugin from llmcore's documentation alone.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import llmcore

LLMCORE_HOOK_API = ">=1,<2"


@attrs.define
class OpenRouterOptions(llmcore.OpenAIOptions):
    """Keys of a ``plugin: openrouter`` section, besides the common provider keys."""

    #: Your app's URL, sent as ``HTTP-Referer`` (OpenRouter uses it for attribution).
    site_url: str | None = None
    #: Your app's name, sent as ``X-Title``.
    app_name: str | None = None
    #: Upstream providers to try first, in order (``provider.order``), e.g. ``[groq]``.
    provider_order: list[str] = attrs.field(factory=list)
    #: ``false``: only the providers in ``provider_order`` (``provider.allow_fallbacks``).
    allow_fallbacks: bool = True


class OpenRouterProvider(llmcore.OpenAIProvider):
    """OpenRouter's OpenAI-compatible API."""

    type_name: ClassVar[str] = "openrouter"
    default_base_url: ClassVar[str | None] = "https://openrouter.ai/api/v1"
    default_api_key_env: ClassVar[str | None] = "OPENROUTER_API_KEY"
    local: ClassVar[bool] = False
    Options: ClassVar[type | None] = OpenRouterOptions
    start_hint: ClassVar[str] = "check https://status.openrouter.ai, or fix base_url"

    @property
    def headers(self) -> dict[str, str]:
        headers = dict(super().headers)
        opts: OpenRouterOptions = self.options
        if opts.site_url:
            headers["HTTP-Referer"] = opts.site_url
        if opts.app_name:
            headers["X-Title"] = opts.app_name
        return headers

    def chat_body(self, request: llmcore.ChatRequest, stream: bool) -> dict[str, Any]:
        body = super().chat_body(request, stream)
        opts: OpenRouterOptions = self.options
        if opts.provider_order or not opts.allow_fallbacks:
            prefs = dict(body.get("provider") or {})
            if opts.provider_order:
                prefs["order"] = list(opts.provider_order)
            prefs["allow_fallbacks"] = opts.allow_fallbacks
            body["provider"] = prefs
        return body


@llmcore.hookimpl
def llmcore_register_providers() -> list[Any]:
    """Called once when llmcore builds its provider table."""
    return [OpenRouterProvider]
