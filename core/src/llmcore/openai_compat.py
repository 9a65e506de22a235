"""Kept so ``llmcore.openai_compat`` imports keep working: the ``openai`` type now lives in
:mod:`llmcore.providers.openai`, its I/O in :mod:`llmcore.http`."""

from __future__ import annotations

from .http.status import error_message, parse_retry_after
from .http.tls import ssl_context
from .providers.openai import (
    OpenAIOptions,
    OpenAIProvider,
    OpenAIStream,
    parse_usage,
    raise_for_status,
)

__all__ = [
    "OpenAIOptions",
    "OpenAIProvider",
    "OpenAIStream",
    "error_message",
    "parse_retry_after",
    "parse_usage",
    "raise_for_status",
    "ssl_context",
]
