"""The limits and deadlines of one provider's calls, read once from its config."""

from __future__ import annotations

import math
from typing import Any

import attrs

MiB = 1024 * 1024
#: How much of an error answer (status >= 400) is read: its message, not a whole page.
ERROR_BODY_BYTES = 64 * 1024


@attrs.frozen(slots=True)
class Limits:
    """What a transport enforces for every call of one provider.

    ``first_token`` bounds the wait for the first byte of an answer (and, for a stream,
    for its first chunk); ``total`` bounds the whole call, a trickling stream included;
    ``read`` bounds each silence between bytes once the answer has started.
    """

    connect: float = 3.0
    read: float = 30.0
    write: float = 30.0
    pool: float = 10.0
    first_token: float = 30.0
    total: float = 600.0
    max_response_bytes: int = 32 * MiB
    max_line_bytes: int = 1 * MiB
    retry_after_cap: float = 3600.0
    max_connections: int = 100

    @classmethod
    def from_config(cls, config: Any, max_connections: int = 100) -> Limits:
        """From a ``ProviderConfig`` (its ``timeout`` and ``limits`` sections)."""
        t = config.timeout
        lim = getattr(config, "limits", None)
        kw: dict[str, Any] = {
            "connect": t.connect,
            "read": t.read,
            "write": t.write,
            "pool": t.pool,
            "first_token": getattr(t, "first_token", None) or t.read,
            "total": getattr(t, "total", None) or 600.0,
            "max_connections": max_connections,
        }
        if lim is not None:
            kw.update(
                max_response_bytes=lim.max_response_bytes,
                max_line_bytes=lim.max_line_bytes,
                retry_after_cap=lim.retry_after_cap,
            )
        return cls(**kw)

    def for_call(self, timeout: float | None) -> Limits:
        """These limits with a request's own ``timeout`` as its read/first-token bound."""
        if timeout is None or not math.isfinite(timeout) or timeout <= 0:
            return self
        return attrs.evolve(self, read=timeout, first_token=timeout, total=max(self.total, timeout))
