"""What a failed call means: which error it is, whether it is the provider's fault, and
what the user should do about it.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from ..errors import (
    AgentCancelledError,
    AgentError,
    AuthenticationError,
    LLMCoreError,
    ModelNotFoundError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    ResponseError,
)
from ..secrets import redact

if TYPE_CHECKING:
    from .candidates import Candidate

#: Failures that say "this server is in trouble" and count towards ``failure_threshold``.
SERVER_TROUBLE = (ProviderConnectionError, ProviderTimeoutError, ResponseError)


class Unsupported(Exception):
    """The candidate cannot do this operation (NotImplementedError): skip it silently."""


def as_provider_error(cand: Candidate, exc: BaseException) -> ProviderError | None:
    """Map whatever a candidate raised to a ProviderError; ``None`` means "not its fault".

    Raises :class:`Unsupported` for a ``NotImplementedError``.
    """
    if isinstance(exc, ProviderError):
        if exc.provider is None:
            exc.provider = cand.name
        return exc
    if isinstance(exc, NotImplementedError):
        raise Unsupported(str(exc)) from exc
    if isinstance(exc, AgentCancelledError):
        return None  # the caller stopped it: the chat ends here, nothing fails over
    if isinstance(exc, AgentError):
        return ResponseError(exc.message, provider=cand.name, model=cand.model, hint=exc.hint)
    if isinstance(exc, LLMCoreError) or not isinstance(exc, Exception):
        return None
    # A transport error the provider did not map (e.g. a stream dropped mid-read).
    err = _map_foreign(cand, exc)
    err.__cause__ = exc
    return err


def _map_foreign(cand: Candidate, exc: BaseException) -> ProviderError:
    name = type(exc).__name__
    text = f"{cand.name}: {name}: {exc}"
    module = type(exc).__module__.split(".")[0]
    if "Timeout" in name or isinstance(exc, TimeoutError):
        return ProviderTimeoutError(text, provider=cand.name, model=cand.model)
    if module in ("httpx", "httpcore", "aiohttp", "h11") or isinstance(exc, OSError):
        return ProviderConnectionError(text, provider=cand.name, model=cand.model)
    return ResponseError(text, provider=cand.name, model=cand.model)


def refused(exc: BaseException) -> bool:
    """Did the connection get refused (nothing listens)? Looks through the cause chain."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ConnectionRefusedError) or isinstance(
            getattr(seen, "os_error", None), ConnectionRefusedError
        ):  # aiohttp's wrapper
            return True
        if isinstance(seen, OSError) and seen.errno == errno.ECONNREFUSED:
            return True
        text = str(seen)
        if "Connection refused" in text or "Errno 111" in text or "ECONNREFUSED" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _credential_header(cfg: object) -> str | None:
    """The credential header a provider's ``options.headers`` sets, if any."""
    from ..secrets import is_credential_header

    headers = (getattr(cfg, "options", None) or {}).get("headers")
    if isinstance(headers, dict):
        for k in headers:
            if is_credential_header(k):
                return str(k)
    return None


def hint(cand: Candidate, err: ProviderError) -> str | None:
    """What the user should do: the provider's own hint, else one from the error class."""
    name = cand.name
    section = f"agents.{name}" if cand.kind == "cli" else f"providers.{name}"
    if isinstance(err, AuthenticationError):
        cfg = cand.provider.config if cand.provider else None
        default_env = getattr(cand.provider, "default_api_key_env", None)
        header = _credential_header(cfg)
        if cfg is not None and cfg.api_key_env:
            where = f"set {cfg.api_key_env}"
        elif cfg is not None and cfg.api_key:
            where = f"fix {section}.api_key"
        elif header is not None:
            where = f"set the {header} header in {section}.headers"
        elif default_env:
            where = f"set {default_env}"
        else:
            where = f"set {section}.api_key_env"
        base = f"configuration problem: {where} to a valid key"
        return f"{base} ({err.hint})" if err.hint else base
    if err.hint:
        return err.hint
    base_url = getattr(cand.provider, "base_url", None)
    if isinstance(err, ProviderConnectionError):
        return redact(
            f"start {name} (is it listening on {base_url}?), or set {section}.enabled: false"
        )
    if isinstance(err, ProviderTimeoutError):
        return f"the server is slow or stuck: check it, or raise {section}.timeout"
    if isinstance(err, ModelNotFoundError):
        return f"pull the model on {name}, or pick one from `llmcore models`"
    if isinstance(err, RateLimitError):
        return "rate limited: wait, or add another provider to the chain"
    if err.status and err.status >= 500:
        return f"{name} failed on its side: see its logs"
    return None
