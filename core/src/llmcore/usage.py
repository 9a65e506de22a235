"""Usage and cost summaries from the SQLite metrics sink (``llmcore usage``).

Kept apart from the CLI so the numbers can be computed and tested without a terminal.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .metrics import counts_as_spend

if TYPE_CHECKING:
    from .config import Config

GROUPS = ("provider", "model", "agent", "day", "key")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
SPARK = "▁▂▃▄▅▆▇█"


def parse_since(text: str, now: float | None = None) -> float:
    """``24h``, ``7d``, ``90m``, ``2w`` (ago) or a date/time (``2025-06-01``,
    ``2025-06-01T12:00``; local time) → a Unix time."""
    now = time.time() if now is None else now
    t = text.strip()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw])", t)
    if m:
        return now - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        return datetime.fromisoformat(t).timestamp()
    except ValueError:
        raise ConfigError(
            f"--since {text!r}: not a duration or a date",
            hint="write a duration like 24h, 7d, 30m, 2w, or a date like 2025-06-01",
        ) from None


def sqlite_path(config: Config) -> Path:
    """Where the ``sqlite`` sink of ``config`` writes."""
    from .sinks.sqlite import default_path

    opts = config.metrics.options.get("sqlite") or {}
    path = opts.get("path") if isinstance(opts, dict) else None
    return Path(path).expanduser() if path else default_path()


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by linear interpolation; ``None`` for no values."""
    if not values:
        return None
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def _key(e: dict[str, Any], by: str) -> str | None:
    if by == "day":
        return datetime.fromtimestamp(e["time"]).strftime("%Y-%m-%d")
    if by == "agent":
        return e.get("agent") if e["kind"] == "agent_run" else None
    if by == "provider":
        return e.get("provider") or "(every provider failed)"
    if by == "key":  # the gateway's client key name (serve.keys); direct calls have none
        return e.get("key_name") or "(no key)"
    return e.get("model") or "(none)"


def summarize(
    events: Iterable[dict[str, Any]],
    by: str = "provider",
    buckets: int = 12,
    since: float | None = None,
    now: float | None = None,
) -> list[dict[str, Any]]:
    """One row per group: requests, errors, tokens, cost, latency p50/p95, TTFT p50.

    ``requests`` counts what callers saw (request events and agent runs) under the
    provider that finally answered; ``failed_attempts`` counts tries that failed under the
    provider that failed (a failover shows on both rows). ``cache_hits`` counts requests a
    cache plugin answered (``cache_hit`` events). ``unpriced`` counts successful
    calls with tokens but no known price. ``series`` is the request count over ``buckets``
    equal slices of the time range (for a sparkline).
    """
    if by not in GROUPS:
        raise ConfigError(f"--by {by!r}: unknown grouping", hint="one of: " + ", ".join(GROUPS))
    evs = list(events)
    now = time.time() if now is None else now
    start = since if since is not None else min((e["time"] for e in evs), default=now)
    span = max(now - start, 1e-9)
    rows: dict[str, dict[str, Any]] = {}
    lat: dict[str, list[float]] = {}
    ttft: dict[str, list[float]] = {}
    for e in evs:
        kind = e["kind"]
        if kind not in ("request", "attempt", "agent_run", "cache_hit"):
            continue
        if kind == "attempt" and (by in ("agent", "day", "key") or e.get("outcome") == "ok"):
            continue
        if kind == "agent_run" and by != "agent" and not counts_as_spend(kind, e.get("request_id")):
            continue  # a routed agent run: its request's `request` event counts it once
        key = _key(e, by)
        if key is None:
            continue
        r = rows.setdefault(
            key,
            {
                by: key,
                "requests": 0,
                "errors": 0,
                "failed_attempts": 0,
                "input_tokens": 0,
                "output_tokens": 0,
                "cost_usd": 0.0,
                "unpriced": 0,
                "series": [0] * buckets,
                "cache_hits": 0,
            },
        )
        if kind == "cache_hit":  # answered from a cache plugin (also counted as a request)
            r["cache_hits"] += 1
            continue
        if kind == "attempt":
            r["failed_attempts"] += 1
            continue
        r["requests"] += 1
        i = min(buckets - 1, max(0, int((e["time"] - start) / span * buckets)))
        r["series"][i] += 1
        ok = e.get("outcome") == "ok"
        if not ok:
            r["errors"] += 1
        r["input_tokens"] += e.get("input_tokens") or 0
        r["output_tokens"] += e.get("output_tokens") or 0
        if e.get("cost_usd") is not None:
            r["cost_usd"] += e["cost_usd"]
        elif ok and (e.get("input_tokens") or e.get("output_tokens")):
            r["unpriced"] += 1
        latency = (
            e.get("latency_s") if kind == "request" else (e.get("duration_s") or e.get("latency_s"))
        )
        if latency is not None and ok:
            lat.setdefault(key, []).append(latency)
        if e.get("ttft_s") is not None and ok:
            ttft.setdefault(key, []).append(e["ttft_s"])
    out = []
    for key, r in rows.items():
        r["cost_usd"] = round(r["cost_usd"], 8)
        r["latency_p50_s"] = percentile(lat.get(key, []), 0.5)
        r["latency_p95_s"] = percentile(lat.get(key, []), 0.95)
        r["ttft_p50_s"] = percentile(ttft.get(key, []), 0.5)
        out.append(r)
    if by == "day":
        out.sort(key=lambda r: r["day"])
    else:
        out.sort(key=lambda r: (-r["cost_usd"], -r["requests"], r[by]))
    return out


def sparkline(series: list[int]) -> str:
    top = max(series, default=0)
    if top == 0:
        return " " * len(series)
    return "".join(
        " " if v == 0 else SPARK[min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1)))]
        for v in series
    )


def prometheus_text(events: Iterable[dict[str, Any]]) -> str:
    """The events replayed into the Prometheus sink's metrics, in the text format."""
    from .sinks.prometheus import PrometheusMetrics

    m = PrometheusMetrics()
    for e in events:
        m.observe(e)
    return m.text()
