"""Where a provider's next call goes: one URL, or a strategy over several (vLLM replicas).

A transport asks its endpoint strategy for a URL before each call and tells it how the
call ended, so a strategy can count calls in flight, skip servers that cannot be reached,
and offer another one to fail over to. The strategy never sees a request body: every URL
it hands out is one the configuration named.
"""

from __future__ import annotations

from typing import Any


def server_root(url: str) -> str:
    """The server root of an OpenAI-style base URL (``…/v1`` → ``…``)."""
    return url[:-3] if url.endswith("/v1") else url


class Endpoint:
    """One fixed URL (the common case). Subclass it to spread calls over several."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    @property
    def urls(self) -> list[str]:
        return [self.url]

    def tries(self) -> int:
        """How many URLs one call may try when connecting fails (1: no failover)."""
        return 1

    def pick(self) -> str:
        """The URL (API base) for the next call."""
        return self.url

    def release(self, url: str, error: BaseException | None) -> None:
        """The call to ``url`` is over (``error`` is what it raised, if anything)."""

    def can_fail_over(self) -> bool:
        """After a connection failure: is there another URL worth trying?"""
        return False

    def refresh(self, transport: Any) -> None:
        """Before a call (sync): update what the choice depends on (health, load)."""

    async def arefresh(self, transport: Any) -> None:
        """Before a call (async)."""
