"""The retry and cooldown rules: how long to wait before a retry, and when a provider (or
one of its models) is put in cooldown.

- Waits: ``Retry-After`` (capped by ``max_retry_after``) when the server sent one, else
  ``providers.X.retry``'s fixed or exponential delay plus jitter.
- Cooldowns: a 429 given up on cools the model (or the provider, with
  ``rate_limit_scope: provider``) for ``Retry-After`` or ``rate_limit_seconds``;
  ``failure_threshold`` server failures in a row cool the provider for
  ``failure_seconds``. Cooldowns live in the shared store (:mod:`llmcore.state`), so
  other processes and hosts skip the provider too.
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, ProviderError, RateLimitError
from .failures import SERVER_TROUBLE

if TYPE_CHECKING:
    from ..config import RetryConfig
    from ..runtime import Runtime
    from ..state import CooldownStore
    from .candidates import Candidate


def retry_cfg(cand: Candidate) -> RetryConfig:
    """The candidate's retry settings; agents get one attempt (a run can take minutes)."""
    from ..config import RetryConfig

    p = cand.provider
    return p.config.retry if p is not None else RetryConfig(max_attempts=1)


class Wait:
    """The wait before retry ``n`` (1 = the first retry), usable as a tenacity ``wait``.

    ``Retry-After`` (capped by ``max_retry_after``) when the server sent one; otherwise
    ``delay`` (fixed) or ``delay * 2**(n-1)`` capped by ``max_delay`` (exponential), plus
    up to ``jitter`` seconds. ``offset`` maps tenacity's attempt numbers to ``n``.
    """

    def __init__(self, cfg: RetryConfig, offset: int = 0) -> None:
        self.cfg = cfg
        self.offset = offset

    def delay(self, exc: BaseException | None, n: int) -> float:
        cfg = self.cfg
        after = retry_after(exc)
        if after is not None:
            return float(min(max(after, 0.0), cfg.max_retry_after))
        if cfg.wait == "fixed":
            base = cfg.delay
        else:
            base = min(cfg.max_delay, cfg.delay * 2.0 ** max(0, n - 1))
        if cfg.jitter > 0:
            import random

            base += random.uniform(0, cfg.jitter)
        return float(base)

    def __call__(self, state: Any) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return self.delay(exc, state.attempt_number + self.offset)


def retry_after(exc: BaseException | None) -> float | None:
    """The server's ``Retry-After`` in seconds, when it is a usable number.

    ``inf`` (or any huge value) stays, and is capped by whoever uses it; ``nan`` and
    non-numbers are treated as absent.
    """
    after = getattr(exc, "retry_after", None)
    if isinstance(after, bool) or not isinstance(after, (int, float)) or math.isnan(after):
        return None
    return float(after)


class Cooldowns:
    """The shared cooldown store, and the per-process count of failures in a row.

    A store that fails (a bug, a full disk, anything) never fails a request: the error is
    reported once and this process goes on with an in-memory store.
    """

    def __init__(self, runtime: Runtime, lock: threading.Lock) -> None:
        self.runtime = runtime
        self.lock = lock
        self._failures: dict[str, int] = {}
        self._store: CooldownStore | None = None
        self._store_spec: str | None = None

    @property
    def store(self) -> CooldownStore:
        """The cooldown store ``routing.state`` names (opened on first use)."""
        spec = self.runtime.config.routing.state
        if self._store is None or self._store_spec != spec:
            from ..state import MemoryStore, open_store

            cap = self.max_cooldown
            try:
                self._store = open_store(spec, max_cooldown=cap)
            except ConfigError:
                raise  # a wrong routing.state is the user's to fix, not to hide
            except Exception as exc:
                self._broken(exc)
                self._store = MemoryStore(max_cooldown=cap)
            self._store_spec = spec
        return self._store

    @property
    def max_cooldown(self) -> float:
        return float(self.runtime.config.routing.max_cooldown)

    _reported = False

    def _broken(self, exc: BaseException) -> None:
        if not self._reported:
            self._reported = True
            from ..secrets import redact

            print(
                f"llmcore: cooldown store failed ({redact(str(exc))[:200]}); this process "
                "keeps its cooldowns in memory",
                file=sys.stderr,
            )

    def _fall_back(self, exc: BaseException) -> CooldownStore:
        """Swap a failing store for an in-memory one (keeping what it still holds)."""
        from ..state import MemoryStore

        self._broken(exc)
        old = self._store
        mem = MemoryStore(max_cooldown=self.max_cooldown)
        try:
            for c in (old.active() if old is not None else {}).values():
                mem.put(c)
        except Exception:
            pass
        self._store = mem
        return mem

    def active(self) -> Mapping[str, Any]:
        try:
            return self.store.active()
        except Exception as exc:
            return self._fall_back(exc).active()

    def cooling(self, cand: Candidate) -> tuple[float, str] | None:
        """``(until, reason)`` when the candidate or its provider is cooling down."""
        active = self.active()
        if not active:
            return None
        found = [c for k, c in active.items() if k in (cand.name, cand.model_key)]
        if not found:
            return None
        last = max(found, key=lambda c: c.until)
        return last.until, last.reason

    def put(self, key: str, until: float, reason: str) -> None:
        from ..state import Cooldown

        try:
            self.store.put(Cooldown(key, until, reason))
        except Exception as exc:
            self._fall_back(exc).put(Cooldown(key, until, reason))

    def seconds(self, seconds: float) -> float:
        """A cooldown length made safe: finite, not negative, at most ``max_cooldown``."""
        if math.isnan(seconds):
            return 0.0
        return max(0.0, min(seconds, self.max_cooldown))

    def after_failure(self, cand: Candidate, err: ProviderError) -> tuple[float, str] | None:
        """Count a failed call; ``(seconds, reason)`` when the provider must cool down now."""
        if not isinstance(err, SERVER_TROUBLE):
            return None
        cfg = self.runtime.config.routing.cooldown
        with self.lock:
            n = self._failures.get(cand.name, 0) + 1
            self._failures[cand.name] = 0 if n >= cfg.failure_threshold else n
        if n >= cfg.failure_threshold and cfg.failure_seconds > 0:
            return cfg.failure_seconds, f"{n} failures in a row"
        return None

    def after_rate_limit(self, cand: Candidate, err: ProviderError) -> tuple[str, float] | None:
        """``(key, seconds)`` to cool when a rate-limited candidate is given up on."""
        if not isinstance(err, RateLimitError):
            return None
        cfg = self.runtime.config.routing.cooldown
        after = retry_after(err)
        seconds = self.seconds(after if after is not None else cfg.rate_limit_seconds)
        if seconds <= 0:
            return None
        scope = getattr(cfg, "rate_limit_scope", "model")
        return (cand.model_key if scope == "model" else cand.name), seconds

    def succeeded(self, cand: Candidate) -> None:
        """A call answered: the failures in a row start again. The caller holds the lock."""
        if self._failures.get(cand.name):
            self._failures[cand.name] = 0

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
