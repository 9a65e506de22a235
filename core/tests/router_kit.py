"""Shared pieces of the router tests (no tests here): chains of OpenAI fakes, an event
recorder, a provider that is not local, and one way to call a client sync or async."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from llmcore import hookimpl
from llmcore.errors import LLMCoreError
from llmcore.metrics import MetricsEvent
from llmcore.testing import StaticProvider
from llmcore.types import ChatResponse, StreamChunk

#: Set as every provider's key; it must never show up anywhere (see router/test_secrets.py).
CANARY = "cnry-7f3a9c1e5b2d4e6f8a0b"  # not key-shaped: only registration can hide it


class RemoteProvider(StaticProvider):
    """A static provider that is not local: its cost comes from config or the registry."""

    type_name: ClassVar[str] = "remote"
    local: ClassVar[bool] = False


class Events:
    """A plugin that records every metrics event."""

    def __init__(self) -> None:
        self.events: list[MetricsEvent] = []

    @hookimpl
    def llmcore_metrics_event(self, event: MetricsEvent) -> None:
        self.events.append(event)

    def kinds(self, kind: str) -> list[MetricsEvent]:
        return [e for e in self.events if e.kind == kind]


def chain(
    providers: Sequence[tuple[str, str]],
    *,
    max_attempts: int = 2,
    timeout: float = 2.0,
    models: Sequence[str] = ("m1",),
    routing: str = "state: memory",
    extra: str = "",
) -> str:
    """YAML for a chain of ``openai`` providers (name, base_url) with fast retries."""
    lines = ["providers:"]
    model_list = ", ".join(models)
    for name, url in providers:
        lines.append(
            f"  {name}: {{plugin: openai, base_url: '{url}', api_key: '{CANARY}', "
            f"models: [{model_list}], timeout: {timeout}, "
            f"retry: {{max_attempts: {max_attempts}, wait: fixed, delay: 0.001, jitter: 0}}"
            f"{extra}}}"
        )
    lines += ["agents: {}", "metrics: {sinks: []}", "routing: {" + routing + "}"]
    return "\n".join(lines) + "\n"


class Api:
    """Call a ``Client`` or an ``AsyncClient`` the same way from async test code."""

    def __init__(self, client: Any, is_async: bool) -> None:
        self.client = client
        self.is_async = is_async

    async def chat(self, prompt: str = "hi", **kw: Any) -> ChatResponse:
        if self.is_async:
            resp: ChatResponse = await self.client.chat(prompt, **kw)
            return resp
        return self.client.chat(prompt, **kw)  # type: ignore[no-any-return]

    async def stream(
        self, prompt: str = "hi", **kw: Any
    ) -> tuple[list[StreamChunk], Any, LLMCoreError | None]:
        """(chunks, the stream's attempts, the error that ended it or None)."""
        got: list[StreamChunk] = []
        it = self.client.stream(prompt, **kw)
        try:
            if self.is_async:
                async for c in it:
                    got.append(c)
            else:
                for c in it:
                    got.append(c)
        except LLMCoreError as exc:
            return got, it.attempts, exc
        return got, it.attempts, None

    async def close(self) -> None:
        if self.is_async:
            await self.client.aclose()
        else:
            self.client.close()
