"""The one exception hierarchy of llmcore.

Every error's text is redacted (no API key can leave through a message or ``repr``) and
most carry a ``hint``: the thing the user should do next.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .secrets import redact

if TYPE_CHECKING:
    from .types import Attempt


class LLMCoreError(Exception):
    """Base of every error llmcore raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = redact(message)
        self.hint = redact(hint) if hint else None
        super().__init__(self.message)

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class ConfigError(LLMCoreError):
    """The configuration is invalid; ``path`` and ``line`` say where."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        file: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.file = file
        where = ""
        if file:
            where = f"{file}:{line}: " if line else f"{file}: "
        elif line:
            where = f"line {line}: "
        text = f"{where}{path}: {message}" if path else f"{where}{message}"
        super().__init__(text, hint=hint)


class PluginError(LLMCoreError):
    """A plugin could not be loaded or broke its contract."""


class ProviderError(LLMCoreError):
    """A provider call failed. ``provider``, ``model`` and ``status`` say which and how."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.provider = provider
        self.model = model
        self.status = status
        super().__init__(message, hint=hint)


class ProviderConnectionError(ProviderError):
    """The server could not be reached (refused, reset, DNS)."""

    retryable = True


class AuthenticationError(ProviderError):
    """The server refused the credentials (401/403): a configuration problem."""


class RateLimitError(ProviderError):
    """The server answered 429. ``retry_after`` is in seconds when the server said."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class ModelNotFoundError(ProviderError):
    """The model does not exist on that provider; ``hint`` says how to get it."""


class ProviderTimeoutError(ProviderError):
    """Connecting, reading or writing took longer than the configured timeout."""

    retryable = True


class ResponseError(ProviderError):
    """The server answered with an error status or a body that could not be understood
    (or one too large, or a redirect, which llmcore never follows). ``retry_after`` is set
    when a 503 said how long to wait."""

    def __init__(
        self, message: str, *, retryable: bool = False, retry_after: float | None = None, **kw: Any
    ) -> None:
        self.retryable = retryable
        self.retry_after = retry_after
        super().__init__(message, **kw)


class BadRequestError(ProviderError):
    """The server rejected the request itself (400, 422): retrying cannot help."""


class StreamInterrupted(ProviderError):
    """A stream failed after chunks had reached the caller; ``partial`` holds that text."""

    def __init__(self, message: str, *, partial: str = "", **kw: Any) -> None:
        self.partial = partial
        super().__init__(message, **kw)


class AgentError(LLMCoreError):
    """An agent run failed. ``result`` holds what the run did before failing, when it ran."""

    #: The partial :class:`~llmcore.types.AgentResult` (files changed, log path), set by the runner.
    result: Any = None

    def __init__(self, message: str, *, agent: str | None = None, hint: str | None = None) -> None:
        self.agent = agent
        super().__init__(message, hint=hint)


class AgentNotFoundError(AgentError):
    """The agent's program is not installed or not on PATH."""


class AgentTimeoutError(AgentError):
    """The agent ran past its timeout and was stopped (its whole process group)."""


class AgentFailedError(AgentError):
    """The agent ran but reported failure (auth, rate limit, untrusted directory, crash)."""


class AgentAuthError(AgentFailedError):
    """The agent's model endpoint refused its credentials (401/403)."""


class AgentRateLimitError(AgentFailedError):
    """The agent's model endpoint answered 429 / quota exhausted."""


class AgentConnectionError(AgentFailedError):
    """The agent could not reach its model endpoint, or the endpoint answered 5xx."""


class AgentUntrustedError(AgentFailedError):
    """The agent refused to work in a directory it does not trust."""


class AgentCancelledError(AgentError):
    """The run was cancelled by the caller; the agent's whole process group was stopped."""


class AllProvidersFailed(LLMCoreError):
    """Every candidate failed or was cooling down. ``attempts`` lists each, in order."""

    def __init__(self, attempts: Sequence[Attempt], *, message: str | None = None) -> None:
        self.attempts = list(attempts)
        super().__init__(message or _summarize(self.attempts))


def _summarize(attempts: Sequence[Attempt]) -> str:
    if not attempts:
        return "no provider is configured or enabled for this request"
    lines = [f"all {len(attempts)} attempt(s) failed:"]
    for a in attempts:
        status = f" {a.status}" if a.status else ""
        what = "skipped (cooling down)" if a.skipped else f"{a.error_type}{status}"
        lines.append(f"  - {a.provider}/{a.model or '-'}: {what}: {a.message}")
        if a.hint:
            lines.append(f"      fix: {a.hint}")
    return "\n".join(lines)
