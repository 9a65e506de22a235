"""Models as routes: the name a client asks for → the ``(provider, model)`` chain to try.

``serve.models`` maps names to chains (``fast: [local/llama3.2, cloud/gpt-4o-mini]``);
every ``provider/model`` works directly; any other name goes to the router as a model
name (its plan picks the providers that serve it). A chain is tried in order through the
public router API, each entry with the router's own retries, cooldowns and attempts; an
entry that fails (or is cooling down) moves on to the next, and the attempts of every
entry are reported together. Streams fail over only before their first chunk.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..errors import AllProvidersFailed, ConfigError
from ..types import Attempt, ChatRequest, ChatResponse, EmbeddingResponse, StreamChunk

if TYPE_CHECKING:
    from ..router import Router

Target = tuple[str | None, str | None]
#: True while a chain entry that is not the last one runs: its "every candidate failed"
#: request event is really a move to the next entry (see ``app.KeyTagger``).
chain_step: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "llmcore_chain_step", default=False
)


class Routes:
    def __init__(self, chains: dict[str, list[str]], providers: dict[str, Any]) -> None:
        self.providers = providers
        self.chains: dict[str, list[Target]] = {}
        for name, chain in chains.items():
            targets: list[Target] = []
            for entry in chain:
                head, _, model = entry.partition("/")
                if head not in providers:
                    raise ConfigError(
                        f"serve.models.{name}: no enabled provider named {head!r} (in {entry!r})",
                        hint="enabled providers: " + (", ".join(providers) or "none"),
                    )
                targets.append((head, model or None))
            self.chains[name] = targets

    def targets(self, model: str) -> list[Target]:
        chain = self.chains.get(model)
        if chain is not None:
            return chain
        head, _, rest = model.partition("/")
        if rest and head in self.providers:
            return [(head, rest)]
        return [(None, model)]

    def names(self) -> list[str]:
        """Route names, then ``provider/model`` for every configured model."""
        out = list(self.chains)
        for name, p in self.providers.items():
            out.extend(f"{name}/{m}" for m in (*p.config.models, *p.config.fallback_models))
        return list(dict.fromkeys(out))


def _for(request: ChatRequest, model: str | None) -> ChatRequest:
    """The request for one chain entry. The gateway built the request for this call alone,
    so the entry's model is set in place (``attrs.evolve`` showed in profiles)."""
    request.model = model
    return request


async def achat(
    router: Router, request: ChatRequest, targets: list[Target], operation: str = "chat"
) -> ChatResponse:
    attempts: list[Attempt] = []
    last = len(targets) - 1
    for i, (provider, model) in enumerate(targets):
        token = chain_step.set(i < last)
        try:
            resp = await router.achat(_for(request, model), provider=provider, operation=operation)
        except AllProvidersFailed as exc:
            attempts.extend(exc.attempts)
            if len(targets) == 1:
                raise
            continue
        finally:
            chain_step.reset(token)
        if attempts:
            resp.attempts = attempts + resp.attempts
        return resp
    raise AllProvidersFailed(attempts)


async def aembed(router: Router, texts: list[str], targets: list[Target]) -> EmbeddingResponse:
    attempts: list[Attempt] = []
    last = len(targets) - 1
    for i, (provider, model) in enumerate(targets):
        token = chain_step.set(i < last)
        try:
            return await router.aembed(texts, model=model, provider=provider)
        except AllProvidersFailed as exc:
            attempts.extend(exc.attempts)
            if len(targets) == 1:
                raise
        finally:
            chain_step.reset(token)
    raise AllProvidersFailed(attempts)


async def aopen_stream(
    router: Router, request: ChatRequest, targets: list[Target]
) -> tuple[StreamChunk | None, AsyncIterator[StreamChunk]]:
    """The first chunk and the rest of the first entry that opens a stream."""
    attempts: list[Attempt] = []
    last = len(targets) - 1
    for i, (provider, model) in enumerate(targets):
        it = router.astream(_for(request, model), provider=provider)
        token = chain_step.set(i < last)
        try:
            first = await it.__anext__()
        except StopAsyncIteration:
            return None, it
        except AllProvidersFailed as exc:
            attempts.extend(exc.attempts)
            if len(targets) == 1:
                raise
            continue
        finally:
            chain_step.reset(token)
        return first, it
    raise AllProvidersFailed(attempts)
