"""What went wrong on the wire, as llmcore errors naming the server and the limit hit."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..errors import ProviderConnectionError, ProviderTimeoutError, ResponseError
from .decoders import BadPayload, LimitExceeded
from .limits import Limits
from .status import origin


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "…"


def refused(exc: BaseException) -> bool:
    """Was the connection refused (nothing listens)? Looks through the cause chain."""
    import errno

    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        os_error = getattr(seen, "os_error", None)  # aiohttp's wrapper
        for e in (seen, os_error):
            if isinstance(e, ConnectionRefusedError) or (
                isinstance(e, OSError) and e.errno == errno.ECONNREFUSED
            ):
                return True
        text = str(seen)
        if "Connection refused" in text or "Errno 111" in text or "Connect call failed" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class TransportFailures:
    """Builds the errors of one provider's transport (its name and "start it" hint)."""

    def __init__(
        self,
        name: str,
        unreachable_hint: str | None = None,
        unreachable: Callable[[str, str, bool], ProviderConnectionError] | None = None,
    ) -> None:
        self.name = name
        self.unreachable_hint = (
            unreachable_hint or "start the server, or fix base_url in llmcore.yaml"
        )
        self._unreachable = unreachable

    def unreachable(self, url: str, exc: BaseException) -> ProviderConnectionError:
        if self._unreachable is not None:
            return self._unreachable(origin(url), _short(exc), refused(exc))
        return ProviderConnectionError(
            f"{self.name}: the server at {origin(url)} is not reachable: {_short(exc)}",
            provider=self.name,
            hint=self.unreachable_hint,
        )

    def cut(
        self, url: str, exc: BaseException | str, during: str = "before the answer was complete"
    ) -> ProviderConnectionError:
        detail = exc if isinstance(exc, str) else _short(exc)
        return ProviderConnectionError(
            f"{self.name}: the connection to {origin(url)} broke {during}: {detail}",
            provider=self.name,
        )

    def timeout(
        self, url: str, lim: Limits, exc: BaseException, got_bytes: bool, deadline: float
    ) -> ProviderTimeoutError:
        """Which limit ran out: connect, first_token, read, or total."""
        name = type(exc).__name__.lower()
        if time.monotonic() >= deadline - 0.01:
            return self.deadline(url, lim, "total", got_bytes)
        if "connect" in name:
            return self.deadline(url, lim, "connect", got_bytes)
        if "pool" in name:
            return self.deadline(url, lim, "pool", got_bytes)
        if "write" in name:
            return self.deadline(url, lim, "write", got_bytes)
        return self.deadline(url, lim, "read" if got_bytes else "first_token", got_bytes)

    def deadline(self, url: str, lim: Limits, which: str, got_bytes: bool) -> ProviderTimeoutError:
        seconds = getattr(lim, which)
        what = {
            "connect": "connecting",
            "pool": "waiting for a free connection",
            "write": "sending the request",
            "first_token": "waiting for the first byte of the answer",
            "read": "waiting for more of the answer (the server went silent)",
            "total": "on the whole call"
            + (" (the answer was still arriving)" if got_bytes else ""),
        }[which]
        return ProviderTimeoutError(
            f"{self.name}: timed out {what} at {origin(url)} (timeout.{which}: {seconds:g}s)",
            provider=self.name,
            hint=f"raise timeout.{which} for this provider in llmcore.yaml, or check the "
            "server's load",
        )

    def too_large(self, url: str, exc: LimitExceeded) -> ResponseError:
        key = (
            "max_line_bytes" if "line" in exc.what or "event" in exc.what else "max_response_bytes"
        )
        return ResponseError(
            f"{self.name}: {exc.what} from {origin(url)} is larger than {exc.limit} bytes; "
            "stopped reading",
            provider=self.name,
            hint=f"raise limits.{key} for this provider if the server is trusted",
        )

    def bad_body(self, url: str, exc: BadPayload) -> ResponseError:
        return ResponseError(
            f"{self.name}: unreadable answer from {origin(url)}: {exc.why}: {exc.snippet!r}",
            provider=self.name,
        )
