"""What the protocol modules share: the error a translation raises, ids, small helpers.

Pure code: nothing here does I/O.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

#: Random per-process prefix + counter: unique ids without a syscall per request.
_PREFIX = os.urandom(6).hex()
_counter = 0


class WireError(Exception):
    """A request the gateway refuses, rendered by the endpoint in its own error shape.

    ``kind`` is a protocol-neutral name (``invalid_request``, ``authentication``,
    ``permission``, ``not_found``, ``rate_limit``, ``overloaded``, ``upstream``,
    ``too_large``); each protocol maps it to its own error type.
    """

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request",
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.param = param
        self.headers = headers or {}
        #: Raised after routing (the router's events already record the request).
        self.routed = False


def bad_request(message: str, param: str | None = None) -> WireError:
    return WireError(400, message, "invalid_request", param=param)


def new_id(prefix: str) -> str:
    global _counter
    _counter += 1
    return f"{prefix}{_PREFIX}{_counter:x}"


def now() -> int:
    return int(time.time())


def dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def expect(cond: bool, message: str, param: str | None = None) -> None:
    if not cond:
        raise bad_request(message, param)


def as_int(value: Any, param: str, minimum: int = 0) -> int | None:
    if value is None:
        return None
    expect(
        isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
        f"{param} must be a whole number >= {minimum}",
        param,
    )
    return int(value)


def as_float(value: Any, param: str) -> float | None:
    if value is None:
        return None
    expect(
        isinstance(value, (int, float)) and not isinstance(value, bool),
        f"{param} must be a number",
        param,
    )
    return float(value)


def as_stop(value: Any, param: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    expect(
        isinstance(value, list) and all(isinstance(s, str) for s in value),
        f"{param} must be a string or a list of strings",
        param,
    )
    return list(value)


def parse_arguments(raw: Any) -> Any:
    """A tool call's arguments (a JSON string in llmcore's OpenAI shape) as an object, for
    protocols that carry them parsed; text that is not JSON is kept under ``_raw``."""
    if isinstance(raw, dict):
        return raw
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"_value": value}


def from_error(exc: BaseException, model: str | None = None) -> WireError:
    """An llmcore error → the status and kind a client of the gateway should see.

    Every candidate refused the request itself (400/422) → 400 with the upstream's words;
    every one said the model does not exist, or nobody serves it → 404; every one is
    rate-limited or cooling down → 429 with ``Retry-After``; anything else → 502.
    """
    from ..budgets import BudgetExceeded
    from ..errors import (
        AllProvidersFailed,
        BadRequestError,
        ConfigError,
        ModelNotFoundError,
        RateLimitError,
    )

    if isinstance(exc, AllProvidersFailed):
        tried = [a for a in exc.attempts if not a.skipped]
        if not exc.attempts:
            return WireError(
                404,
                f"model {model!r} is not served here: {exc.message}",
                "not_found",
                param="model",
            )
        if not tried:
            until = min((a.cooldown_until or 0.0) for a in exc.attempts)
            wait = max(1, int(until - time.time() + 0.999))
            if all(a.error_type == "OverBudget" for a in exc.attempts):
                why = "; ".join(f"{a.provider}: {a.message}" for a in exc.attempts)
                return WireError(
                    429,
                    f"every provider for {model!r} is over its budget ({why}); retry in {wait} s",
                    "rate_limit",
                    headers={"Retry-After": str(wait)},
                )
            return WireError(
                429,
                f"every provider for {model!r} is cooling down; retry in {wait} s",
                "rate_limit",
                headers={"Retry-After": str(wait)},
            )
        statuses = {a.status for a in tried}
        last = tried[-1]
        if statuses <= {400, 422}:
            return WireError(400, last.message or exc.message, "invalid_request")
        if statuses == {404}:
            return WireError(404, last.message or exc.message, "not_found", param="model")
        if statuses == {429}:
            return WireError(429, exc.message, "rate_limit", headers={"Retry-After": "1"})
        return WireError(502, f"every provider failed: {exc.message}", "upstream")
    if isinstance(exc, BudgetExceeded):  # routing.budget is spent: nothing goes out
        wait = max(1, int(exc.resets_at - time.time() + 0.999))
        return WireError(429, exc.message, "rate_limit", headers={"Retry-After": str(wait)})
    if isinstance(exc, ConfigError):
        return WireError(404, exc.message, "not_found", param="model")
    if isinstance(exc, BadRequestError):
        return WireError(400, exc.message, "invalid_request")
    if isinstance(exc, ModelNotFoundError):
        return WireError(404, exc.message, "not_found", param="model")
    if isinstance(exc, RateLimitError):
        return WireError(429, exc.message, "rate_limit", headers={"Retry-After": "1"})
    from ..secrets import redact

    return WireError(502, f"upstream failure: {redact(str(exc))}", "upstream")
