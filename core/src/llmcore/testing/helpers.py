"""Small building blocks for tests that need a provider without a server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import attrs

from ..provider import Provider
from ..types import ChatRequest, ChatResponse, EmbeddingResponse, StreamChunk, Usage


def write_config(directory: Path, text: str, name: str = "llmcore.yaml") -> Path:
    path = Path(directory) / name
    path.write_text(text, encoding="utf-8")
    return path


class StaticProvider(Provider):
    """Answers every chat with ``reply`` (from its options), streamed word by word.

    ``fail_with`` (an exception instance, set on the object) makes every call raise it.
    Records every request in ``requests``.
    """

    type_name: ClassVar[str] = "static"
    default_base_url: ClassVar[str | None] = "http://127.0.0.1:9"

    @attrs.define
    class Options:
        reply: str = "hello from static"

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.reply = self.options.reply
        self.fail_with: BaseException | None = None
        self.requests: list[Any] = []

    def _check(self, request: Any) -> None:
        self.requests.append(request)
        if self.fail_with is not None:
            raise self.fail_with

    def chat(self, request: ChatRequest) -> ChatResponse:
        self._check(request)
        words = len(self.reply.split())
        return ChatResponse(
            content=self.reply,
            model=self.model_for(request),
            provider=self.name,
            usage=Usage(
                input_tokens=sum(len(m.content.split()) for m in request.messages),
                output_tokens=words,
            ),
            finish_reason="stop",
        )

    def generate(self, request: ChatRequest) -> ChatResponse:
        return self.chat(request)

    def stream(self, request: ChatRequest) -> Iterator[StreamChunk]:
        self._check(request)
        words = self.reply.split(" ")
        for i, word in enumerate(words):
            last = i == len(words) - 1
            yield StreamChunk(
                content=word + ("" if last else " "),
                finish_reason="stop" if last else None,
                model=self.model_for(request),
                provider=self.name,
            )

    def embed(self, texts: list[str], model: str | None = None) -> EmbeddingResponse:
        self._check(texts)
        return EmbeddingResponse(
            vectors=[[float(len(t)), 1.0] for t in texts], model=model, provider=self.name
        )
