"""Keep API keys out of every message, repr and log line.

Keys enter llmcore in one place (config resolution) and are registered here; every
error message and event passes through :func:`redact` before it leaves the process.
"""

from __future__ import annotations

import re
import threading

_lock = threading.Lock()
_known: set[str] = set()
# Shapes of well-known keys, caught even when they never passed through config.
_PATTERNS = re.compile(
    r"(sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{12,})"
    r"|((?i:bearer)\s+[A-Za-z0-9._\-]{8,})"
    r"|(AIza[0-9A-Za-z_\-]{20,})"
)
REDACTED = "***"
# The password in a URL's user info (redis://user:secret@host, https://u:p@proxy).
# The lookbehind makes a match start only where a scheme can start: without it, a long run
# of letters is rescanned from each of its positions (quadratic: minutes for a 300 KB prompt).
_URL_PASSWORD = re.compile(r"(?<![a-z0-9+.-])(?P<head>[a-z][a-z0-9+.-]*://[^/:@\s]*:)[^@/\s]+@")


def register_secret(value: str | None) -> None:
    """Remember ``value`` so that :func:`redact` removes it from any text."""
    if value and len(value) >= 4:
        with _lock:
            _known.add(value)


def redact(text: str) -> str:
    """Return ``text`` with every registered secret and key-shaped token replaced."""
    if not text:
        return text
    for secret in sorted(_known, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{REDACTED}@", text)
    return _PATTERNS.sub(_mask, text)


def _mask(match: re.Match[str]) -> str:
    if match.group(2):
        return "Bearer " + REDACTED
    return REDACTED


#: Header names that carry a credential, besides any whose name says so (see below).
_CREDENTIAL_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "api-key",
        "x-api-key",
        "cookie",
        "x-goog-api-key",
        "x-auth-token",
    }
)
_CREDENTIAL_WORDS = ("key", "token", "secret", "auth", "password", "cookie", "session")


def is_credential_header(name: str) -> bool:
    """Does a header of this name carry a credential (``Authorization``, ``api-key``…)?"""
    n = str(name).lower()
    return n in _CREDENTIAL_HEADERS or any(w in n for w in _CREDENTIAL_WORDS)


def register_headers(headers: object) -> None:
    """Register the values of credential headers (and the token after ``Bearer``/``Basic``)
    as secrets, so a key given through ``options.headers`` is treated like ``api_key``."""
    if not isinstance(headers, dict):
        return
    for k, v in headers.items():
        if is_credential_header(k) and isinstance(v, str):
            register_secret(v)
            scheme, _, token = v.partition(" ")
            if token and scheme.lower() in ("bearer", "basic", "token", "apikey"):
                register_secret(token.strip())


def redact_headers(headers: object) -> object:
    """``headers`` with every credential header's value replaced (for display)."""
    if not isinstance(headers, dict):
        return headers
    return {k: (REDACTED if is_credential_header(k) else v) for k, v in headers.items()}
