"""The base class every provider (HTTP backend) plugin subclasses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

from .config import ProviderConfig, structure_options
from .types import (
    ChatRequest,
    ChatResponse,
    EmbeddingResponse,
    Health,
    ModelInfo,
    StreamChunk,
)


class Provider:
    """One configured backend. Subclass it, set ``type_name``, and implement what it can do.

    A subclass implements at least :meth:`chat` and :meth:`stream`. The async methods fall
    back to running the sync ones in a thread; override them for real async I/O. Methods a
    backend cannot serve raise ``NotImplementedError`` and the router skips the provider
    for that operation.
    """

    #: The name users write as ``plugin:`` in ``llmcore.yaml``.
    type_name: ClassVar[str] = ""
    #: ``api`` for HTTP backends; agents serving prompts report ``cli``.
    kind: ClassVar[str] = "api"
    #: Used when the config gives no ``base_url``.
    default_base_url: ClassVar[str | None] = None
    #: The environment variable read for the key when the config names none.
    default_api_key_env: ClassVar[str | None] = None
    #: An attrs class of extra config keys this type accepts, or ``None``.
    Options: ClassVar[type | None] = None
    #: True when the backend runs on the user's machine (its cost is 0).
    local: ClassVar[bool] = True

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.name = config.name or self.type_name
        self.options: Any = (
            structure_options(self.Options, config.options) if self.Options else None
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.base_url!r}>"

    @property
    def base_url(self) -> str | None:
        urls = self.config.base_urls or []
        url = self.config.base_url or (urls[0] if urls else None)
        return (url or self.default_base_url or "").rstrip("/") or None

    @property
    def api_key(self) -> str | None:
        cfg = self.config
        if not cfg.api_key_env and not cfg.api_key and self.default_api_key_env:
            import os

            from .secrets import register_secret

            key = os.environ.get(self.default_api_key_env)
            register_secret(key)
            return key
        return cfg.resolved_api_key()

    @property
    def default_model(self) -> str | None:
        return self.config.models[0] if self.config.models else None

    def model_for(self, request: Any) -> str | None:
        return getattr(request, "model", None) or self.default_model

    # -- the calls --------------------------------------------------------------------
    def chat(self, request: ChatRequest) -> ChatResponse:
        raise NotImplementedError(f"{self.type_name} does not support chat")

    def stream(self, request: ChatRequest) -> Iterator[StreamChunk]:
        raise NotImplementedError(f"{self.type_name} does not support streaming")

    def generate(self, request: ChatRequest) -> ChatResponse:
        """A raw text completion of ``request.extra['prompt']`` (no chat template)."""
        raise NotImplementedError(f"{self.type_name} does not support text completion")

    def embed(self, texts: list[str], model: str | None = None) -> EmbeddingResponse:
        raise NotImplementedError(f"{self.type_name} does not support embeddings")

    def models(self) -> list[ModelInfo]:
        return [ModelInfo(name=m, provider=self.name) for m in self.config.models]

    def pull(self, model: str, progress: Any = None) -> None:
        """Download ``model`` onto the backend; ``progress(status, done, total)`` is called
        as it goes. Backends that cannot pull raise ``NotImplementedError``."""
        raise NotImplementedError(f"{self.type_name} cannot pull models")

    def health(self) -> Health:
        """One quick probe: is the backend reachable, and what version is it?"""
        raise NotImplementedError

    def close(self) -> None:
        """Release pooled connections."""

    # -- async, by default through a worker thread -----------------------------------
    async def achat(self, request: ChatRequest) -> ChatResponse:
        import asyncio

        return await asyncio.to_thread(self.chat, request)

    async def astream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        import asyncio

        iterator = await asyncio.to_thread(lambda: iter(self.stream(request)))
        sentinel = object()
        while True:
            chunk = await asyncio.to_thread(next, iterator, sentinel)
            if chunk is sentinel:
                return
            yield chunk  # type: ignore[misc]

    async def agenerate(self, request: ChatRequest) -> ChatResponse:
        import asyncio

        return await asyncio.to_thread(self.generate, request)

    async def aembed(self, texts: list[str], model: str | None = None) -> EmbeddingResponse:
        import asyncio

        return await asyncio.to_thread(self.embed, texts, model)

    async def amodels(self) -> list[ModelInfo]:
        import asyncio

        return await asyncio.to_thread(self.models)

    async def aclose(self) -> None:
        self.close()

    def load(self) -> float | None:
        """How busy the backend is (requests running + waiting), when it can tell."""
        return None
