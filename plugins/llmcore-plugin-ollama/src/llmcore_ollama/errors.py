"""Ollama's failures → llmcore's error hierarchy, each with the next step in its hint.

Ollama answers errors as ``{"error": "..."}``, both as an HTTP status and inside a 200
NDJSON stream. A model that is not pulled is a 404 ``model 'x' not found`` (older
releases: ``model "x" not found, try pulling it first``).
"""

from __future__ import annotations

import json
from typing import Any

from llmcore import (
    AuthenticationError,
    BadRequestError,
    ModelNotFoundError,
    ProviderConnectionError,
    ProviderError,
    RateLimitError,
    ResponseError,
    parse_retry_after,
    retryable_status,
)

CLOUD_KEYS_URL = "https://ollama.com/settings/keys"


def error_text(body: str) -> str:
    """The ``error`` field of an Ollama error body, else the start of the body itself."""
    try:
        data = json.loads(body)
    except ValueError:
        return body[:300]
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])
    return body[:300]


def pull_hint(model: str | None, cloud: bool) -> str:
    if cloud:
        return "check the model name; cloud models are listed at https://ollama.com/search?c=cloud"
    return f"Run: ollama pull {model}" if model else "Run: ollama pull <model>"


def for_status(
    provider: str,
    model: str | None,
    status: int,
    body: str,
    headers: Any,
    *,
    cloud: bool,
    key_env: str | None,
    retry_after_cap: float = 3600.0,
) -> ProviderError:
    """The error for an HTTP error status (``headers`` needs only ``.get``)."""
    text = error_text(body)
    kw: dict[str, Any] = {"provider": provider, "model": model, "status": status}
    if status in (401, 403):
        where = f"the environment variable {key_env}" if key_env else "api_key_env"
        return AuthenticationError(
            f"{provider}: Ollama refused the credentials ({status}): {text}",
            hint=f"set a valid key in {where} (keys: {CLOUD_KEYS_URL})",
            **kw,
        )
    if status == 404:
        if "model" in text.lower() or (model and model in text):
            return ModelNotFoundError(
                f"{provider}: model '{model}' is not available: {text}",
                hint=pull_hint(model, cloud),
                **kw,
            )
        return ModelNotFoundError(
            f"{provider}: not found (404): {text}",
            hint="check base_url: it should be Ollama's root URL, e.g. http://localhost:11434",
            **kw,
        )
    if status == 429:
        return RateLimitError(
            f"{provider}: rate limited (429): {text}",
            retry_after=parse_retry_after(headers, retry_after_cap),
            **kw,
        )
    if status in (400, 422):
        return BadRequestError(f"{provider}: Ollama rejected the request ({status}): {text}", **kw)
    after = parse_retry_after(headers, retry_after_cap) if status == 503 else None
    return ResponseError(
        f"{provider}: Ollama answered {status}: {text}",
        retryable=retryable_status(status),
        retry_after=after,
        **kw,
    )


def in_stream(provider: str, model: str | None, message: str, *, cloud: bool) -> ProviderError:
    """An ``{"error": ...}`` object that arrived inside a 200 stream."""
    if "not found" in message and ("model" in message or "manifest" in message):
        return ModelNotFoundError(
            f"{provider}: {message}", provider=provider, model=model, hint=pull_hint(model, cloud)
        )
    if "file does not exist" in message:
        return ModelNotFoundError(
            f"{provider}: no such model to pull: '{model}': {message}",
            provider=provider,
            model=model,
            hint="check the name at https://ollama.com/library",
        )
    return ResponseError(
        f"{provider}: Ollama reported an error mid-stream: {message}",
        provider=provider,
        model=model,
        retryable=True,
    )


def not_reachable(
    provider: str, base_url: str, detail: str, *, cloud: bool, refused: bool
) -> ProviderConnectionError:
    if cloud:
        return ProviderConnectionError(
            f"{provider}: cannot reach Ollama Cloud at {base_url}: {detail}",
            provider=provider,
            hint="check the network connection and base_url",
        )
    if refused:
        return ProviderConnectionError(
            f"{provider}: Ollama is not running at {base_url} (connection refused)",
            provider=provider,
            hint="start it with `ollama serve` (or open the Ollama app), "
            "or point base_url at the machine where it runs",
        )
    return ProviderConnectionError(
        f"{provider}: cannot talk to Ollama at {base_url}: {detail}",
        provider=provider,
        hint="is `ollama serve` running and reachable at that address?",
    )


def cut(provider: str, model: str | None, detail: str) -> ProviderConnectionError:
    return ProviderConnectionError(
        f"{provider}: the connection to Ollama broke before the answer was complete: {detail}",
        provider=provider,
        model=model,
    )


def malformed(provider: str, model: str | None, body: str) -> ResponseError:
    return ResponseError(
        f"{provider}: Ollama sent an unreadable answer: {body[:200]!r}",
        provider=provider,
        model=model,
        status=200,
    )
