"""Client keys of the gateway: who is asking, may they, and have they used up their share.

* Keys are compared by their sha256 (``hmac.compare_digest``); the secret itself is never
  stored, logged or put in a metric: requests carry the key's *name*.
* ``rpm`` is counted in memory shared by every worker of one ``llmcore serve`` (an
  anonymous shared mapping made before the workers fork), with a sliding-window estimate
  over the current and the previous minute.
* ``daily_usd`` is checked against the spend the metrics db records for the key since
  00:00 UTC (read off the event loop, cached a few seconds: the sqlite sink writes in
  batches, so a burst can overshoot by what it spends in that time).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import mmap
import multiprocessing
import os
import struct
import time
from typing import TYPE_CHECKING, Any

from .wire import WireError

if TYPE_CHECKING:
    from ..config import ServeKeyConfig

_SLOT = struct.Struct("<qqq")  # minute, count this minute, count the minute before
BUDGET_TTL_S = 5.0


def sha256_hex(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class SharedCounters:
    """Per-key request counters in memory the forked workers share."""

    def __init__(self, n: int) -> None:
        self.mem = mmap.mmap(-1, max(1, n) * _SLOT.size)
        self.lock = multiprocessing.get_context("fork").Lock()

    def take(self, i: int, rpm: int, t: float | None = None) -> float:
        """Count one request for slot ``i``; 0 when allowed, else seconds to wait."""
        t = time.time() if t is None else t
        minute = int(t // 60)
        frac = (t % 60) / 60
        off = i * _SLOT.size
        with self.lock:
            m, cur, prev = _SLOT.unpack_from(self.mem, off)
            if m != minute:
                prev = cur if m == minute - 1 else 0
                cur = 0
            estimate = prev * (1 - frac) + cur
            if estimate >= rpm:
                _SLOT.pack_into(self.mem, off, minute, cur, prev)
                return max(1.0, 60 * (1 - frac)) if cur >= rpm else max(1.0, 60 * (1 - frac) * 0.5)
            _SLOT.pack_into(self.mem, off, minute, cur + 1, prev)
        return 0.0


class KeyRing:
    def __init__(
        self, keys: dict[str, ServeKeyConfig], counters: SharedCounters | None, spent: Any = None
    ) -> None:
        from ..errors import ConfigError

        self.entries: list[tuple[bytes, str, ServeKeyConfig, int]] = []
        for i, (name, cfg) in enumerate(keys.items()):
            if cfg.key_env:
                secret = os.environ.get(cfg.key_env)
                if not secret:
                    raise ConfigError(
                        f"serve.keys.{name}: environment variable {cfg.key_env} is not set",
                        hint=f"export {cfg.key_env}=… before llmcore serve",
                    )
                digest = sha256_hex(secret)
            else:
                digest = (cfg.sha256 or "").lower()
            self.entries.append((digest.encode(), name, cfg, i))
        self.counters = counters
        #: ``spent(name, since) -> float``: USD the key spent since ``since`` (blocking).
        self.spent = spent
        self._budget_cache: dict[str, tuple[float, float]] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.entries)

    def identify(self, presented: str | None) -> tuple[str, ServeKeyConfig, int]:
        if not presented:
            raise WireError(
                401, "no API key: send Authorization: Bearer KEY (or x-api-key)", "authentication"
            )
        digest = sha256_hex(presented).encode()
        for d, name, cfg, i in self.entries:
            if hmac.compare_digest(d, digest):
                return name, cfg, i
        raise WireError(401, "invalid API key", "authentication")

    def check_model(self, name: str, cfg: ServeKeyConfig, model: str) -> None:
        if cfg.models and model not in cfg.models:
            raise WireError(
                403,
                f"key {name!r} may not use model {model!r}; allowed: " + ", ".join(cfg.models),
                "permission",
                param="model",
            )

    def check_rate(self, name: str, cfg: ServeKeyConfig, slot: int) -> None:
        if cfg.rpm is None or self.counters is None:
            return
        wait = self.counters.take(slot, cfg.rpm)
        if wait:
            secs = str(int(wait + 0.999))
            raise WireError(
                429,
                f"key {name!r} is over its limit of {cfg.rpm} requests per "
                f"minute; retry in {secs} s",
                "rate_limit",
                headers={"Retry-After": secs},
            )

    async def check_budget(self, name: str, cfg: ServeKeyConfig) -> None:
        if cfg.daily_usd is None or self.spent is None:
            return
        now = time.time()
        cached = self._budget_cache.get(name)
        if cached is None or now - cached[0] > BUDGET_TTL_S:
            day = now - now % 86400  # 00:00 UTC
            spent = await asyncio.to_thread(self.spent, name, day)
            cached = self._budget_cache[name] = (now, spent)
        if cached[1] >= cfg.daily_usd:
            reset = int(86400 - now % 86400)
            raise WireError(
                429,
                f"key {name!r} has spent ${cached[1]:.4f} of its daily "
                f"budget of ${cfg.daily_usd:.2f}; it resets at 00:00 UTC",
                "rate_limit",
                headers={"Retry-After": str(reset)},
            )


def sqlite_spent(path: str) -> Any:
    """``spent(name, since)`` reading the sqlite metrics db at ``path``."""

    def spent(name: str, since: float) -> float:
        import sqlite3

        if not os.path.exists(path):
            return 0.0
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)
        try:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'events'").fetchone() is None:
                return 0.0  # the sink has not written its first batch yet
            row = conn.execute(
                "SELECT COALESCE(SUM(cost_usd), 0) FROM events WHERE time >= ? AND "
                "kind = 'request' AND json_extract(extra, '$.key_name') = ?",
                (since, name),
            ).fetchone()
        finally:
            conn.close()
        return float(row[0] or 0.0)

    return spent
