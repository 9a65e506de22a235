"""llmcore plugin: LM Studio's local server, OpenAI-compatible plus its native model list.

Chat, streaming, completions and embeddings go through the core OpenAI-compatible client
(``http://localhost:1234/v1`` by default). The model list comes from LM Studio's native
REST API (``/api/v0/models``), which says what the OpenAI list does not: the model's type
(llm, vlm, embeddings), whether it is loaded, its maximum context length and its
quantization. Servers without that API (older LM Studio) fall back to ``/v1/models``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import llmcore
from llmcore import OpenAIProvider

LLMCORE_HOOK_API = "1"

__all__ = ["LMStudioOptions", "LMStudioProvider", "model_info"]

#: LM Studio model type → llmcore capabilities.
CAPABILITIES = {
    "llm": ["completion"],
    "vlm": ["completion", "vision"],
    "embeddings": ["embedding"],
}


@attrs.define
class LMStudioOptions:
    """Extra config keys of the ``lmstudio`` type."""

    #: Ask for usage at the end of streams (``stream_options.include_usage``).
    stream_usage: bool = True
    #: Extra HTTP headers for every request.
    headers: dict[str, str] = attrs.field(factory=dict)
    #: Keys merged into every request body.
    extra_body: dict[str, Any] = attrs.field(factory=dict)
    #: Most connections kept open per pool.
    max_connections: int = 100


class LMStudioProvider(OpenAIProvider):
    """LM Studio's server. The API key is optional: set ``api_key_env`` when the server
    requires authentication; it is sent as a Bearer token."""

    type_name: ClassVar[str] = "lmstudio"
    default_base_url: ClassVar[str | None] = "http://localhost:1234/v1"
    default_api_key_env: ClassVar[str | None] = None
    local: ClassVar[bool] = True
    Options: ClassVar[type | None] = LMStudioOptions
    start_hint: ClassVar[str] = (
        "start LM Studio's server (Developer tab, or `lms server start`), or fix base_url"
    )

    @property
    def native_root(self) -> str:
        """The server root where ``/api/v0`` lives: ``base_url`` without its ``/v1``."""
        base = self.base_url or ""
        return base[:-3] if base.endswith("/v1") else base

    #: LM Studio's native model list, beside ``/v1`` at the server root.
    NATIVE_MODELS = llmcore.HTTPRequest("GET", "/api/v0/models", root=True)

    def models(self) -> list[llmcore.ModelInfo]:
        try:
            data = self.call(self.NATIVE_MODELS)
        except llmcore.ModelNotFoundError:  # 404: no native API; use the OpenAI list
            return super().models()
        return self._native(data)

    async def amodels(self) -> list[llmcore.ModelInfo]:
        try:
            data = await self.acall(self.NATIVE_MODELS)
        except llmcore.ModelNotFoundError:
            return await super().amodels()
        return self._native(data)

    def _native(self, data: Any) -> list[llmcore.ModelInfo]:
        try:
            return [model_info(m, self.name) for m in data["data"]]
        except (KeyError, TypeError, AttributeError):
            raise self.answer_error(data, "data[] (LM Studio's model list)") from None


def model_info(item: dict[str, Any], provider: str) -> llmcore.ModelInfo:
    """One ``/api/v0/models`` entry as a ``ModelInfo``."""
    ctx = item.get("loaded_context_length") or item.get("max_context_length")
    kind = item.get("type")
    return llmcore.ModelInfo(
        name=item["id"],
        provider=provider,
        context_length=int(ctx) if isinstance(ctx, (int, float)) else None,
        capabilities=list(CAPABILITIES.get(str(kind), [])),
        quantization=item.get("quantization"),
        family=item.get("arch"),
        loaded=item.get("state") == "loaded" if "state" in item else None,
        details={k: v for k, v in item.items() if k not in ("id", "object")},
    )


@llmcore.hookimpl
def llmcore_register_providers() -> list[Any]:
    return [LMStudioProvider]
