"""Budgets: what providers may spend per day and per month, counted from the metrics database.

``providers.X.budget: {daily_usd, monthly_usd}`` skips a provider that has spent its limit
like a cooling one (a skipped attempt with ``error_type`` ``OverBudget``, until the period
resets); ``routing.budget`` stops every request with :class:`BudgetExceeded`, which says what
was spent and when the limit resets. Spending is the ``cost_usd`` of successful requests and
agent runs in the ``sqlite`` metrics database, so every process writing to that file shares
it; when ``routing.state`` is a Redis URL, spending is also counted in Redis (by
:class:`SpendSink`, added to the metrics sinks while a budget is set) and read from there, so
every host sharing that Redis shares the budget. Days and months are local time. The sums are
read at most every :data:`REFRESH_S` seconds per process.
"""

from __future__ import annotations

import collections
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import LLMCoreError
from .metrics import MetricsEvent, MetricsSink, counts_as_spend
from .secrets import redact

if TYPE_CHECKING:
    from .config import BudgetConfig, Config
    from .runtime import Runtime

REFRESH_S = 2.0


class BudgetExceeded(LLMCoreError):
    """The global budget (``routing.budget``) is spent: no request goes out until it resets."""

    def __init__(
        self, message: str, *, spent: float, limit: float, resets_at: float, hint: str | None = None
    ) -> None:
        self.spent = spent
        self.limit = limit
        self.resets_at = resets_at
        super().__init__(message, hint=hint)


def period_starts(now: float | None = None) -> dict[str, tuple[float, float]]:
    """``daily``/``monthly`` → (start, reset) as Unix times, in local time."""
    t = datetime.fromtimestamp(time.time() if now is None else now)
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    next_month = (
        month.replace(year=month.year + 1, month=1)
        if month.month == 12
        else month.replace(month=month.month + 1)
    )
    return {
        "daily": (day.timestamp(), day.timestamp() + 86400),
        "monthly": (month.timestamp(), next_month.timestamp()),
    }


#: Seconds a budget read may wait for a locked metrics database: it runs on the request
#: path, which a stuck database must never stall (the last known sum is used instead).
READ_TIMEOUT_S = 0.25


def spent(path: str | Path, since: float, provider: str | None = None) -> float:
    """USD spent since ``since`` (by ``provider``, or by everyone) per the metrics database.

    Opened read-only with a short timeout; raises ``sqlite3.Error`` when it cannot be read.
    """
    if not Path(path).is_file():
        return 0.0
    import sqlite3

    conn = sqlite3.connect(
        f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=READ_TIMEOUT_S
    )
    try:
        sql = (
            "SELECT coalesce(sum(cost_usd), 0) FROM events WHERE time >= ? AND "
            "outcome = 'ok' AND (kind = 'request' OR (kind = 'agent_run' AND "
            # a routed agent run's cost is on its request's `request` event (agent_dispatch)
            "coalesce(request_id, '') = ''))"
        )
        args: list[Any] = [since]
        if provider is not None:
            sql += " AND provider = ?"
            args.append(provider)
        return float(conn.execute(sql, args).fetchone()[0])
    finally:
        conn.close()


def limits(b: BudgetConfig | None) -> list[tuple[str, float]]:
    if b is None:
        return []
    return [
        (k, float(v))
        for k, v in (("daily", b.daily_usd), ("monthly", b.monthly_usd))
        if v is not None
    ]


def has_budget(config: Config) -> bool:
    return config.routing.budget is not None or any(
        p.budget is not None for p in (config.providers or {}).values()
    )


def redis_url(config: Config) -> str | None:
    state = config.routing.state or ""
    return state if state.startswith(("redis://", "rediss://", "unix://")) else None


class RedisSpend:
    """Spending counters in Redis: ``llmcore:spend:<provider or *>:<period>:<start>``, each
    kept a day longer than its period. Short socket timeouts: reads are on the request path."""

    PREFIX = "llmcore:spend:"

    def __init__(self, url: str) -> None:
        import redis

        self.r = redis.Redis.from_url(
            url, socket_timeout=READ_TIMEOUT_S, socket_connect_timeout=READ_TIMEOUT_S
        )

    def key(self, provider: str | None, period: str, start: float) -> str:
        return f"{self.PREFIX}{provider or '*'}:{period}:{int(start)}"

    def add(self, provider: str | None, usd: float, now: float | None = None) -> None:
        pipe = self.r.pipeline(transaction=False)
        for period, (start, reset) in period_starts(now).items():
            for who in (provider, None):
                k = self.key(who, period, start)
                pipe.incrbyfloat(k, usd)
                pipe.expireat(k, int(reset) + 86400)
        pipe.execute()

    def get(self, provider: str | None, period: str, start: float) -> float:
        raw = self.r.get(self.key(provider, period, start))
        return float(raw) if raw is not None else 0.0


class SpendSink(MetricsSink):
    """Counts the cost of successful requests and agent runs in Redis (see
    :class:`RedisSpend`), on a background thread: ``emit`` only appends to a deque."""

    type_name: ClassVar[str] = "budget_spend"

    def __init__(self, url: str) -> None:
        super().__init__({})
        self.spend = RedisSpend(url)
        self._pending: collections.deque[tuple[str | None, float, float]] = collections.deque()
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="llmcore-budget-spend", daemon=True)
        self._thread.start()

    def emit(self, event: MetricsEvent) -> None:
        if (
            counts_as_spend(event.kind, event.request_id)
            and event.outcome == "ok"
            and event.cost_usd
        ):
            self._pending.append((event.provider, event.cost_usd, event.time))
            self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(1.0)
            self._wake.clear()
            while self._pending:
                provider, usd, when = self._pending.popleft()
                try:
                    self.spend.add(provider, usd, when)
                except Exception as exc:  # Redis down: the local db still counts it
                    self.report(exc)
            if self._stop:
                return

    def flush(self) -> None:
        self._wake.set()
        deadline = time.monotonic() + 5.0
        while self._pending and time.monotonic() < deadline:
            time.sleep(0.005)

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(5.0)


class Budgets:
    """The budget state of one runtime; ``over()`` is cheap between refreshes."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.active = has_budget(config)
        url = redis_url(config) if self.active else None
        self.redis = RedisSpend(url) if url else None
        self._lock = threading.Lock()
        self._cache: dict[tuple[str | None, str], tuple[float, float]] = {}
        self._reported = False

    def _spent(self, provider: str | None, period: str, start: float) -> float:
        key = (provider, period)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and now - hit[0] < REFRESH_S:
                return hit[1]
        from .usage import sqlite_path

        try:
            if self.redis is not None:
                value = self.redis.get(provider, period, start)
            else:
                value = spent(sqlite_path(self.config), start, provider)
        except Exception as exc:  # locked, corrupt, no events table yet; Redis down
            value = hit[1] if hit is not None else 0.0
            if not self._reported:
                self._reported = True
                import sys

                where = "Redis" if self.redis is not None else "the metrics database"
                print(
                    f"llmcore: budgets cannot read {where} ({redact(str(exc))}); using "
                    f"the last known spending",
                    file=sys.stderr,
                )
        with self._lock:
            self._cache[key] = (now, value)
        return value

    def over(
        self, provider: str | None, budget: BudgetConfig | None
    ) -> tuple[str, float, float, float] | None:
        """(period, spent, limit, resets_at) of the first limit reached, else ``None``."""
        starts = period_starts()
        for period, limit in limits(budget):
            start, reset = starts[period]
            used = self._spent(provider, period, start)
            if used >= limit:
                return period, used, limit, reset
        return None

    def check_global(self) -> None:
        got = self.over(None, self.config.routing.budget)
        if got is None:
            return
        period, used, limit, reset = got
        when = datetime.fromtimestamp(reset).strftime("%Y-%m-%d %H:%M")
        raise BudgetExceeded(
            f"the {period} budget of ${limit:.2f} (routing.budget.{period}_usd) is spent: "
            f"${used:.4f} since {_since(period)}; it resets at {when} "
            f"(in {_left(reset - time.time())})",
            spent=used,
            limit=limit,
            resets_at=reset,
            hint=f"wait until {when}, or raise routing.budget.{period}_usd in llmcore.yaml",
        )

    def provider_over(
        self, name: str, budget: BudgetConfig | None
    ) -> tuple[str, str, float] | None:
        """(message, hint, resets_at) when provider ``name`` is over its budget."""
        got = self.over(name, budget)
        if got is None:
            return None
        period, used, limit, reset = got
        when = datetime.fromtimestamp(reset).strftime("%Y-%m-%d %H:%M")
        return (
            f"over its {period} budget: ${used:.4f} of ${limit:.2f} spent",
            f"back at {when}; raise providers.{name}.budget.{period}_usd to use it now",
            reset,
        )


def for_runtime(runtime: Runtime) -> Budgets:
    """The runtime's budget state (made on first use; remade when its config is replaced)."""
    b: Budgets | None = getattr(runtime, "_budgets", None)
    if b is None or b.config is not runtime.config:
        b = Budgets(runtime.config)
        runtime._budgets = b  # type: ignore[attr-defined]
    return b


def spend_sinks(config: Config) -> list[MetricsSink]:
    """The sink that shares spending through Redis, when a budget is set and
    ``routing.state`` is Redis (called when the runtime builds its metrics)."""
    url = redis_url(config)
    return [SpendSink(url)] if url and has_budget(config) else []


def _since(period: str) -> str:
    return "00:00 today" if period == "daily" else "the 1st of the month"


def _left(seconds: float) -> str:
    s = max(0, int(seconds))
    if s >= 86400:
        return f"{s // 86400}d {s % 86400 // 3600}h"
    return f"{s // 3600}h {s % 3600 // 60}m"
