"""HTTP answers → llmcore errors, and Retry-After read safely."""

from __future__ import annotations

import math

import pytest
from llmcore import (
    AuthenticationError,
    BadRequestError,
    ModelNotFoundError,
    RateLimitError,
    ResponseError,
)
from llmcore.http import answer_error, parse_retry_after, status_error, token_count


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "inf"}, 3600.0),
        ({"retry-after": "1e20"}, 3600.0),
        ({"retry-after-ms": "1e300"}, 3600.0),
        ({"retry-after": "nan"}, 3600.0),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # a date in the past
        ({"retry-after": "Fri, 31 Dec 99999 23:59:59 GMT"}, None),
        ({}, None),
    ],
)
def test_retry_after_never_raises_and_is_clamped(
    headers: dict[str, str], expected: float | None
) -> None:
    assert parse_retry_after(headers) == expected


def test_retry_after_cap_is_configurable() -> None:
    assert parse_retry_after({"retry-after": "500"}, cap=60) == 60


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (401, AuthenticationError, False),
        (403, AuthenticationError, False),
        (404, ModelNotFoundError, False),
        (429, RateLimitError, True),
        (400, BadRequestError, False),
        (422, BadRequestError, False),
        (408, ResponseError, True),
        (500, ResponseError, True),
        (502, ResponseError, True),
        (503, ResponseError, True),
        (529, ResponseError, True),
        (599, ResponseError, True),
        (501, ResponseError, False),
        (505, ResponseError, False),
    ],
)
def test_status_mapping(status: int, cls: type, retryable: bool) -> None:
    err = status_error("p", "m", status, b'{"error": {"message": "said the server"}}', {})
    assert type(err) is cls and err.retryable is retryable
    assert "said the server" in err.message and err.status == status


def test_503_carries_retry_after_and_a_provider_404_hint_is_used() -> None:
    err = status_error("p", None, 503, b"busy", {"retry-after": "2"})
    assert isinstance(err, ResponseError) and err.retry_after == 2.0
    nf = status_error("p", "m", 404, b"", {}, not_found_hint="use claude-x")
    assert nf.hint == "use claude-x"


def test_a_200_with_an_error_object_names_the_servers_message() -> None:
    err = answer_error("p", {"error": {"message": "quota exhausted"}}, "choices")
    assert "quota exhausted" in err.message
    shape = answer_error("p", {}, "choices[0].message")
    assert "no choices[0].message" in shape.message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12, 12),
        (3.0, 3),
        (math.inf, 0),
        (float("nan"), 0),
        (-4, 0),
        ("9", 9),
        (None, 0),
        (True, 0),
        ("x", 0),
    ],
)
def test_token_counts_are_safe(value: object, expected: int) -> None:
    assert token_count(value) == expected
