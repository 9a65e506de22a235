"""HTTP answers → llmcore errors: status codes, ``Retry-After``, and 200s that are not answers.

Pure functions, shared by every provider; a provider with its own wording (Ollama's "Run:
ollama pull", Anthropic's 404 hint) passes its own hint or overrides
:meth:`llmcore.Provider.error_for_status` and calls :func:`status_error` for the rest.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from typing import Any

from ..errors import (
    AuthenticationError,
    BadRequestError,
    ModelNotFoundError,
    ProviderError,
    RateLimitError,
    ResponseError,
)

#: How much of an unreadable body a message quotes.
SNIPPET = 200
#: Statuses that are worth another try (timeouts, overload, gateways): every 5xx
#: (Anthropic's 529 "overloaded" included) except the two that can never change.
NOT_RETRYABLE_5XX = frozenset({501, 505})
#: The default ceiling of a ``Retry-After`` (an hour); absurd or endless values clamp to it.
RETRY_AFTER_CAP = 3600.0


def retryable_status(status: int) -> bool:
    return status == 408 or (500 <= status <= 599 and status not in NOT_RETRYABLE_5XX)


def server_message(data: Any) -> str | None:
    """The server's own words in a decoded error body: OpenAI/Anthropic ``error.message``,
    Ollama ``error``, FastAPI ``detail``, or a top-level ``message``."""
    if not isinstance(data, dict):
        return None
    err = data.get("error")
    if isinstance(err, dict):
        msg = err.get("message") or err.get("msg")
        if msg:
            return str(msg)[:500]
        return json.dumps(err)[:500]
    if isinstance(err, str) and err:
        return err[:500]
    if data.get("message") and isinstance(data.get("message"), str):
        return str(data["message"])[:500]
    detail = data.get("detail")
    if detail:
        return detail[:500] if isinstance(detail, str) else json.dumps(detail)[:500]
    return None


def error_message(text: str | bytes) -> str:
    """The human part of an error body, else the start of the raw text."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return text[:SNIPPET].strip()
    return server_message(data) or text[:SNIPPET].strip()


def parse_retry_after(
    headers: Mapping[str, str] | Any, cap: float = RETRY_AFTER_CAP
) -> float | None:
    """Seconds to wait from ``retry-after-ms`` (preferred) or ``Retry-After`` (seconds or
    an HTTP date); ``None`` when absent or unreadable.

    Never raises: a negative value is 0, an infinite, NaN or absurd one is ``cap``
    (the server asked for a long wait; the cap keeps the number usable), garbage is
    ignored.
    """
    try:
        ms = headers.get("retry-after-ms")
        value = headers.get("retry-after")
    except Exception:  # a header container we cannot read is no reason to fail a call
        return None
    if ms:
        seconds = _number(str(ms))
        if seconds is not None:
            return _clamp(seconds / 1000.0, cap)
    if not value:
        return None
    seconds = _number(str(value))
    if seconds is None:
        from email.utils import parsedate_to_datetime

        try:
            seconds = parsedate_to_datetime(str(value)).timestamp() - time.time()
        except (TypeError, ValueError, OverflowError, IndexError):
            return None
    return _clamp(seconds, cap)


def _number(text: str) -> float | None:
    try:
        return float(text.strip())
    except (ValueError, OverflowError):
        return None


def _clamp(seconds: float, cap: float) -> float:
    if math.isnan(seconds) or seconds > cap:
        return cap
    return max(0.0, seconds)


def status_error(
    provider: str,
    model: str | None,
    status: int,
    body: bytes | str,
    headers: Mapping[str, str] | Any,
    *,
    not_found_hint: str | None = None,
    retry_after_cap: float = RETRY_AFTER_CAP,
) -> ProviderError:
    """The llmcore error for an HTTP error answer (status ≥ 400)."""
    msg = error_message(body)
    kw: dict[str, Any] = {"provider": provider, "model": model, "status": status}
    if status in (401, 403):
        return AuthenticationError(
            f"{provider}: the server refused the credentials ({status}): {msg}",
            hint="check the API key (api_key_env in llmcore.yaml and that the variable is "
            "exported)",
            **kw,
        )
    if status == 404:
        what = f"model {model!r} " if model else ""
        return ModelNotFoundError(
            f"{provider}: {what}not found (404): {msg}",
            hint=not_found_hint
            or f"list the served models with `llmcore models --provider "
            f"{provider}`; also check base_url",
            **kw,
        )
    if status == 429:
        return RateLimitError(
            f"{provider}: rate limited (429): {msg}",
            retry_after=parse_retry_after(headers, retry_after_cap),
            **kw,
        )
    if status in (400, 413, 422):
        return BadRequestError(
            f"{provider}: the server rejected the request ({status}): {msg}", **kw
        )
    retry_after = parse_retry_after(headers, retry_after_cap) if status == 503 else None
    return ResponseError(
        f"{provider}: server error {status}: {msg}",
        retryable=retryable_status(status),
        retry_after=retry_after,
        **kw,
    )


def redirect_error(provider: str, status: int, location: str | None, url: str) -> ResponseError:
    """A 3xx: never followed, since the request (prompt, key) would go where the config does
    not say."""
    where = location or "(no Location header)"
    return ResponseError(
        f"{provider}: the server at {origin(url)} answered {status}, a redirect to {where}; "
        "llmcore does not follow redirects",
        provider=provider,
        status=status,
        hint="set base_url to the address the server redirects to, if you trust it",
    )


def answer_error(
    provider: str, data: Any, wanted: str, *, model: str | None = None, status: int = 200
) -> ResponseError:
    # ``status`` is only named in the text: a 2xx is not an error status to report.
    """A 2xx whose body is not the answer asked for. When the body carries an error object,
    its message is the one shown (and the failure may be worth another try elsewhere)."""
    # Only an ``error`` (or FastAPI ``detail``) field says "this is an error"; a bare
    # ``message`` may be part of a wrong-shaped answer (Ollama's own field is ``message``),
    # and is quoted in the snippet below anyway.
    msg = (
        server_message(data)
        if isinstance(data, dict) and (data.get("error") or data.get("detail"))
        else None
    )
    if msg is not None:
        return ResponseError(
            f"{provider}: the server answered {status} with an error: {msg}",
            provider=provider,
            model=model,
            retryable=False,
        )
    try:
        snippet = json.dumps(data)[:SNIPPET]
    except (TypeError, ValueError):
        snippet = repr(data)[:SNIPPET]
    return ResponseError(
        f"{provider}: the answer has no {wanted}: {snippet}", provider=provider, model=model
    )


def origin(url: str) -> str:
    """``scheme://host:port/path`` without the query (never a credential)."""
    return url.split("?", 1)[0]


def token_count(value: Any) -> int:
    """A token count from a server: a finite, non-negative whole number, else 0 (a bogus
    count must not throw away a complete answer)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(0, value)
    if isinstance(value, float) and math.isfinite(value):
        return max(0, int(value))
    if isinstance(value, str):
        try:
            return token_count(float(value))
        except ValueError:
            return 0
    return 0
