"""A request's values are checked before any network call: a wrong value is the caller's
mistake, so it is a :class:`BadRequestError` naming the value, raised at once, never sent
to a server (which may accept it silently or answer with something unreadable)."""

from __future__ import annotations

import math
from typing import Any

from ..errors import BadRequestError


def _bad(text: str, hint: str | None = None) -> BadRequestError:
    return BadRequestError(text, hint=hint)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_request(request: Any, op: str) -> None:
    """Raise :class:`BadRequestError` for a value no server should get."""
    if op == "embed":
        texts = request
        if not isinstance(texts, list) or not texts:
            raise _bad("nothing to embed: give at least one text")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise _bad(f"texts[{i}] is {type(t).__name__}, not a string")
        return
    msgs = request.messages
    if not msgs and not request.extra.get("prompt"):
        raise _bad("the request has no messages", hint="pass a prompt or at least one message")
    for i, m in enumerate(msgs):
        if not isinstance(getattr(m, "role", None), str) or not m.role:
            raise _bad(f"messages[{i}] has no role")
        if not isinstance(m.content, str):
            raise _bad(f"messages[{i}].content is {type(m.content).__name__}, not a string")
    t = request.temperature
    if t is not None and not (_number(t) and 0 <= t <= 2):
        raise _bad(f"temperature={t!r}: must be a number from 0 to 2")
    p = request.top_p
    if p is not None and not (_number(p) and 0 <= p <= 1):
        raise _bad(f"top_p={p!r}: must be a number from 0 to 1")
    n = request.max_tokens
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise _bad(f"max_tokens={n!r}: must be a whole number of at least 1")
    s = request.seed
    if s is not None and (isinstance(s, bool) or not isinstance(s, int)):
        raise _bad(f"seed={s!r}: must be a whole number")
    tm = request.timeout
    if tm is not None and not (_number(tm) and tm > 0):
        raise _bad(f"timeout={tm!r}: must be a positive, finite number of seconds")
    stop = request.stop
    if stop is not None and (
        not isinstance(stop, list) or not all(isinstance(x, str) for x in stop)
    ):
        raise _bad(f"stop={stop!r}: must be a list of strings")
    if request.tools is not None and (
        not isinstance(request.tools, list) or not all(isinstance(x, dict) for x in request.tools)
    ):
        raise _bad("tools must be a list of tool definitions (mappings)")
    rf = request.response_format
    if rf is not None and not isinstance(rf, dict):
        raise _bad(f"response_format={rf!r}: must be a mapping, e.g. {{'type': 'json_object'}}")
