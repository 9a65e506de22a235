"""The request path's wire layer: sans-IO values and decoders, and the two transports.

Providers describe calls (:class:`HTTPRequest`) and read answers with pure code; the
transports (:class:`SyncTransport` over httpcore, :class:`AsyncTransport` over asyncio with the
pure HTTP/1.1 code of :mod:`.h1`) are
the only code in llmcore that does HTTP, and where the limits live: no redirect
followed, bounded bodies and lines, first-token / read / total deadlines.
"""

from __future__ import annotations

from .decoders import (
    BadPayload,
    BodyDecoder,
    LimitExceeded,
    LineDecoder,
    NDJSONDecoder,
    SSEDecoder,
    SSEEvent,
    SSERun,
)
from .endpoints import Endpoint, server_root
from .limits import Limits
from .messages import HTTPRequest, HTTPResponse
from .status import (
    answer_error,
    error_message,
    parse_retry_after,
    retryable_status,
    server_message,
    status_error,
    token_count,
)
from .streams import NDJSONChunks, SSEChunks, StreamDecoder

__all__ = [
    "BadPayload",
    "BodyDecoder",
    "Endpoint",
    "HTTPRequest",
    "HTTPResponse",
    "LimitExceeded",
    "Limits",
    "LineDecoder",
    "NDJSONChunks",
    "NDJSONDecoder",
    "SSEChunks",
    "SSEDecoder",
    "SSEEvent",
    "SSERun",
    "StreamDecoder",
    "answer_error",
    "error_message",
    "parse_retry_after",
    "retryable_status",
    "server_message",
    "server_root",
    "status_error",
    "token_count",
]
