"""TLS contexts shared by every provider of the process."""

from __future__ import annotations

import threading
from typing import Any

_SSL_LOCK = threading.Lock()
_SSL_CONTEXTS: dict[tuple[str | None, ...], Any] = {}


def ssl_context(url: str) -> Any:
    """The ``ssl.SSLContext`` for a client of ``url``, shared by every provider in the process.

    Why: httpx builds a verifying context per client by default, loading the whole CA bundle
    (~30-50 ms), which a provider paid on its first request even for ``http://`` servers.
    For ``https`` the one verifying context is built on first use (CA file from
    ``SSL_CERT_FILE``/``SSL_CERT_DIR`` when set, as httpx does, else certifi's bundle). For
    plain ``http`` the context is never used for the server; it is a bare one that trusts
    no CA, so anything that did try TLS through it (a proxy, a redirect) fails closed.
    """
    import os
    import ssl

    if url.lower().startswith("https:"):
        key: tuple[str | None, ...] = (
            "https",
            os.environ.get("SSL_CERT_FILE"),
            os.environ.get("SSL_CERT_DIR"),
        )
    else:
        key = ("http",)
    ctx = _SSL_CONTEXTS.get(key)
    if ctx is not None:
        return ctx
    with _SSL_LOCK:
        ctx = _SSL_CONTEXTS.get(key)
        if ctx is None:
            if key[0] == "http":
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, with no CA loaded
            elif key[1]:
                ctx = ssl.create_default_context(cafile=key[1])
            elif key[2]:
                ctx = ssl.create_default_context(capath=key[2])
            else:
                import certifi

                ctx = ssl.create_default_context(cafile=certifi.where())
            _SSL_CONTEXTS[key] = ctx
    return ctx
