from __future__ import annotations

import pytest
from llmcore.errors import AllProvidersFailed, AuthenticationError, RateLimitError
from llmcore.secrets import redact, register_secret
from llmcore.types import Attempt


def test_registered_secret_never_in_message_or_repr() -> None:
    register_secret("my-canary-secret-value")
    err = AuthenticationError(
        "bad key my-canary-secret-value", provider="x", hint="key was my-canary-secret-value"
    )
    for text in (str(err), repr(err), err.message, err.hint or ""):
        assert "my-canary-secret-value" not in text


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer abcdefghijklmnop",
        "key sk-proj-abcdefghijklmnop1234",
        "AIzaSyA-abcdefghijklmnopqrstuv",
    ],
)
def test_key_shapes_are_redacted(text: str) -> None:
    out = redact(text)
    assert "abcdefghijklmnop" not in out and "***" in out


def test_url_passwords_are_redacted() -> None:
    assert redact("cannot reach redis://default:hunter2pass@127.0.0.1:6379/0") == (
        "cannot reach redis://default:***@127.0.0.1:6379/0"
    )
    plain = "see http://127.0.0.1:8080/v1 and a:b@c"
    assert redact(plain) == plain


def test_all_providers_failed_lists_every_attempt() -> None:
    err = AllProvidersFailed(
        [
            Attempt(
                provider="ollama",
                model="llama3",
                error_type="ProviderConnectionError",
                message="refused",
                hint="start it: ollama serve",
            ),
            Attempt(provider="cloud", skipped=True, message="cooling down until 12:00"),
        ]
    )
    text = str(err)
    assert "ollama/llama3" in text and "ollama serve" in text and "skipped" in text
    assert RateLimitError("slow down", retry_after=3).retry_after == 3
