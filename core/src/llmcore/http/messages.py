"""The values that cross between a provider's pure code and a transport.

A provider *describes* a call as an :class:`HTTPRequest` and *reads* an
:class:`HTTPResponse`; only a transport (:mod:`.sync`, :mod:`.aio`) does I/O. Keeping the
two apart is what lets one set of limits, deadlines and redirect rules serve every
provider, sync and async alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import attrs


@attrs.define(slots=True)
class HTTPRequest:
    """One call to make. ``path`` is joined to the endpoint the transport picks (a provider
    never names a host itself, so nothing can be sent to another one); ``root`` asks for
    the endpoint's server root instead of its API base (e.g. ``/health`` beside ``/v1``)."""

    method: str
    path: str
    #: The JSON body (encoded by the transport) or raw bytes, or ``None``.
    json: Any = None
    content: bytes | None = None
    #: Headers added to the provider's own for this call only.
    headers: Mapping[str, str] | None = None
    #: The model named in the call, for error messages.
    model: str | None = None
    #: Seconds; replaces ``timeout.read`` and ``timeout.first_token`` for this call
    #: (a request's own ``timeout``).
    timeout: float | None = None
    #: Send to the server root (the endpoint URL without a trailing ``/v1``).
    root: bool = False

    def body_bytes(self) -> bytes | None:
        if self.content is not None:
            return self.content
        if self.json is None:
            return None
        return json.dumps(self.json).encode()


@attrs.define(slots=True)
class HTTPResponse:
    """A complete answer: status, headers (lower-case names) and the decoded body bytes
    (already bounded by ``max_response_bytes``)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str = ""

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def lower_headers(items: Any) -> dict[str, str]:
    """Header pairs as a dict with lower-case names (the last value of a repeated one)."""
    return {str(k).lower(): str(v) for k, v in items}


class Headers(Mapping[str, str]):
    """An answer's headers: names looked up case-insensitively (the last value of a
    repeated header wins, as for every header llmcore reads)."""

    __slots__ = ("_d",)

    def __init__(self, lower: dict[str, str]) -> None:
        self._d = lower  # names already lower-case

    @classmethod
    def from_pairs(cls, pairs: list[tuple[bytes, bytes]]) -> Headers:
        return cls({k.decode("latin-1").lower(): v.decode("latin-1") for k, v in pairs})

    def __getitem__(self, name: str) -> str:
        return self._d[name.lower()]

    def get(self, name: str, default: Any = None) -> Any:
        return self._d.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._d

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __repr__(self) -> str:
        return f"Headers({self._d!r})"
