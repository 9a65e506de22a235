"""Conversations: ``client.conversation()`` keeps the history and sends it with each turn.

A conversation has an id (``cid``); with logs on, every turn is logged under it, so
``llmcore chat -c`` (the last one) or ``--cid ID`` continues it later, in another process.
Before each turn the history is trimmed to the model's context length from the registry
(oldest turns first, the system message kept), with a notice: a history too long for the
model is never sent to fail.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Generator
from typing import TYPE_CHECKING, Any

from .types import Message

if TYPE_CHECKING:
    from .types import ChatResponse, StreamChunk

_log = logging.getLogger("llmcore.conversation")
#: Tokens kept free for the answer when the call does not say ``max_tokens``.
ANSWER_RESERVE = 1024


def estimate_tokens(m: Message) -> int:
    """A rough count (4 characters a token, a few per message and per image): trimming
    must never wait for a tokenizer, and it errs towards sending less."""
    return len(m.content) // 4 + 4 + 256 * len(m.images or [])


def fit(
    messages: list[Message], context: int | None, reserve: int = ANSWER_RESERVE
) -> tuple[list[Message], int]:
    """The messages that fit in ``context`` tokens (leaving ``reserve``), dropping the oldest
    turns but never the system messages or the last message; and how many were dropped."""
    if not context:
        return messages, 0
    budget = max(0, context - reserve)
    system = [m for m in messages if m.role == "system"]
    rest = [m for m in messages if m.role != "system"]
    used = sum(estimate_tokens(m) for m in system)
    kept: list[Message] = []
    for m in reversed(rest):
        cost = estimate_tokens(m)
        if kept and used + cost > budget:
            break
        kept.append(m)
        used += cost
    kept.reverse()
    # A reply without the question it answers confuses models: start on a user turn.
    while len(kept) > 1 and kept[0].role != "user":
        kept.pop(0)
    dropped = len(rest) - len(kept)
    return [*system, *kept], dropped


class _Base:
    def __init__(
        self,
        client: Any,
        *,
        cid: str | None = None,
        model: str | None = None,
        provider: str | None = None,
        system: str | None = None,
        log: bool | None = None,
        history: list[Message] | None = None,
        on_notice: Callable[[str], None] | None = None,
        **options: Any,
    ) -> None:
        from .promptlog import new_id

        self.client = client
        self.cid = cid or new_id()
        self.model = model
        self.provider = provider
        self.log = log
        self.options = options
        self.messages: list[Message] = list(history or [])
        if system and not any(m.role == "system" for m in self.messages):
            self.messages.insert(0, Message("system", system))
        self.on_notice = on_notice or _log.warning
        #: Messages left out of the last turn to fit the context (0 when none).
        self.trimmed = 0

    def _context_length(self) -> int | None:
        """The smallest context the registry knows among the providers that may answer."""
        from .registry import get_registry

        runtime = self.client.runtime
        registry = get_registry(runtime.config)
        lengths = []
        for name, p in runtime.providers.items():
            if self.provider and name != self.provider:
                continue
            model = self.model or (p.config.models[0] if p.config.models else None)
            entry = registry.info(model, p.type_name)
            if entry is not None and entry.context_length:
                lengths.append(entry.context_length)
        return min(lengths) if lengths else None

    def _turn(self, prompt: str | Message) -> list[Message]:
        msg = prompt if isinstance(prompt, Message) else Message("user", prompt)
        msgs, dropped = fit(
            [*self.messages, msg],
            self._context_length(),
            self.options.get("max_tokens") or ANSWER_RESERVE,
        )
        self.trimmed = dropped
        if dropped:
            self.on_notice(
                f"conversation {self.cid}: left out the {dropped} oldest "
                f"message(s) to fit the model's context"
            )
        return msgs

    def _kwargs(self, kw: dict[str, Any]) -> dict[str, Any]:
        out = {"model": self.model, "provider": self.provider, **self.options, **kw}
        out.setdefault("log", self.log)
        return out

    def _answered(self, prompt: str | Message, resp: ChatResponse | None) -> None:
        if resp is None:
            return
        msg = prompt if isinstance(prompt, Message) else Message("user", prompt)
        msg.images = None  # sent once; the history keeps the text
        self.messages += [msg, Message("assistant", resp.content, tool_calls=resp.tool_calls)]


class Conversation(_Base):
    """A chat that remembers: each :meth:`send` sends the history and adds the turn."""

    def send(self, prompt: str | Message, **kw: Any) -> ChatResponse:
        msgs = self._turn(prompt)
        resp: ChatResponse = self.client.chat(msgs, _conversation_id=self.cid, **self._kwargs(kw))
        self._answered(prompt, resp)
        return resp

    def stream(self, prompt: str | Message, **kw: Any) -> Generator[StreamChunk, None, None]:
        """Yield the answer; the turn is added to the history when the stream ends (or is
        stopped: the part received is kept)."""
        msgs = self._turn(prompt)
        chunks = self.client.stream(msgs, _conversation_id=self.cid, **self._kwargs(kw))
        try:
            yield from chunks
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
            self._answered(prompt, getattr(chunks, "response", None))


class AsyncConversation(_Base):
    """The async :class:`Conversation`."""

    async def send(self, prompt: str | Message, **kw: Any) -> ChatResponse:
        msgs = self._turn(prompt)
        resp: ChatResponse = await self.client.chat(
            msgs, _conversation_id=self.cid, **self._kwargs(kw)
        )
        self._answered(prompt, resp)
        return resp

    async def stream(self, prompt: str | Message, **kw: Any) -> AsyncIterator[StreamChunk]:
        msgs = self._turn(prompt)
        chunks = self.client.stream(msgs, _conversation_id=self.cid, **self._kwargs(kw))
        try:
            async for c in chunks:
                yield c
        finally:
            self._answered(prompt, getattr(chunks, "response", None))
