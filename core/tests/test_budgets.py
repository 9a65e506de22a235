"""Budgets from the metrics database: a provider over its budget is skipped like a cooling
one (reason in the attempts and in ``doctor``); a spent global budget refuses requests."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from core_support import budget_config as config
from llmcore import Client
from llmcore.budgets import BudgetExceeded, SpendSink, period_starts, spent
from llmcore.config import parse_config
from llmcore.errors import ConfigError
from llmcore.metrics import MetricsEvent
from llmcore.sinks.sqlite import connect, event_row, insert_rows
from llmcore.testing.fakes import OpenAIFake, Reply


def spend(
    db: Path,
    provider: str,
    usd: float,
    when: float | None = None,
    kind: str = "request",
    request_id: str | None = None,
) -> None:
    conn = connect(db)
    try:
        insert_rows(
            conn,
            [
                event_row(
                    {
                        "kind": kind,
                        "provider": provider,
                        "request_id": request_id,
                        "outcome": "ok",
                        "cost_usd": usd,
                        "time": when or time.time(),
                    }
                )
            ],
        )
    finally:
        conn.close()


def test_a_provider_over_budget_is_skipped(tmp_path: Path) -> None:
    db = tmp_path / "metrics.db"
    spend(db, "pricey", 0.75)
    spend(db, "pricey", 0.50)
    spend(db, "pricey", 9.0, when=period_starts()["daily"][0] - 60)  # yesterday: not counted
    spend(db, "cheap", 5.0)  # another provider's spending is not pricey's
    with OpenAIFake() as a, OpenAIFake() as b:
        text = config(a, b, db, budget="budget: {daily_usd: 1.0, monthly_usd: 100}")
        with Client(parse_config(text)) as c:
            b.push(Reply(text="from cheap"))
            resp = c.chat("hi")
        assert resp.provider == "cheap" and resp.content == "from cheap"
        assert a.requests == []  # no network call to the skipped one
        skipped = resp.attempts[0]
        assert (skipped.provider, skipped.skipped, skipped.error_type) == (
            "pricey",
            True,
            "OverBudget",
        )
        assert "daily budget: $1.2500 of $1.00" in skipped.message
        assert skipped.cooldown_until == period_starts()["daily"][1]
        # under budget it is first again
        text = config(a, b, db, budget="budget: {daily_usd: 2.0}")
        with Client(parse_config(text)) as c:
            a.push(Reply(text="from pricey"))
            assert c.chat("hi").provider == "pricey"
        cfg = tmp_path / "llmcore.yaml"
        cfg.write_text(config(a, b, db, budget="budget: {daily_usd: 1.0}"))
        out = subprocess.run(
            [sys.executable, "-m", "llmcore", "--config", str(cfg), "doctor", "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "NO_COLOR": "1"},
        )
    rows = {c["name"]: c for c in json.loads(out.stdout)["checks"] if c["component"] == "budget"}
    assert rows["pricey"]["status"] == "budget" and "$1.2500 of $1.00" in rows["pricey"]["detail"]


def test_a_spent_global_budget_refuses_requests(tmp_path: Path) -> None:
    db = tmp_path / "metrics.db"
    spend(db, "pricey", 1.5)
    spend(db, "cheap", 1.0)
    with OpenAIFake() as a, OpenAIFake() as b:
        text = config(a, b, db, glob="budget: {monthly_usd: 2.0}")
        with Client(parse_config(text)) as c, pytest.raises(BudgetExceeded) as info:
            c.chat("hi")
        assert a.requests == [] and b.requests == []
    err = info.value
    assert err.spent == pytest.approx(2.5) and err.limit == 2.0
    assert err.resets_at == period_starts()["monthly"][1]
    assert "monthly budget of $2.00" in str(err) and "$2.5000" in str(err)
    assert "resets at" in str(err)


def test_a_routed_agent_run_counts_once_toward_the_budget(tmp_path: Path) -> None:
    # An agent answering a routed chat: the router's `request` event and the dispatcher's
    # `agent_run` event carry the same cost and request id; the budget counts it once. A
    # direct agent run (no request id) counts on its own.
    db = tmp_path / "metrics.db"
    spend(db, "coder", 1.0, request_id="r-1")
    spend(db, "coder", 1.0, kind="agent_run", request_id="r-1")
    spend(db, "coder", 0.5, kind="agent_run")
    assert spent(db, 0) == pytest.approx(1.5)
    assert spent(db, 0, provider="coder") == pytest.approx(1.5)
    with OpenAIFake() as a, OpenAIFake() as b:
        with Client(parse_config(config(a, b, db, glob="budget: {monthly_usd: 2.0}"))) as c:
            a.push(Reply(text="under budget"))
            assert c.chat("hi").content == "under budget"
        spend(db, "coder", 0.75, kind="agent_run")  # a direct run: now over
        over = parse_config(config(a, b, db, glob="budget: {monthly_usd: 2.0}"))
        with Client(over) as c, pytest.raises(BudgetExceeded) as info:
            c.chat("hi")
    assert info.value.spent == pytest.approx(2.25)


def test_the_redis_spend_sink_skips_routed_agent_runs() -> None:
    sink = SpendSink.__new__(SpendSink)  # no thread, no Redis: emit's filter only
    sink._pending = collections.deque()
    sink._wake = threading.Event()
    for kind, rid in [("request", "r-1"), ("agent_run", "r-1"), ("agent_run", None)]:
        sink.emit(MetricsEvent(kind=kind, provider="coder", cost_usd=1.0, request_id=rid))
    assert [(p, usd) for p, usd, _ in sink._pending] == [("coder", 1.0), ("coder", 1.0)]


def test_a_negative_budget_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"routing\.budget\.daily_usd: must not be negative"):
        parse_config("routing:\n  budget: {daily_usd: -1}\n")


def test_a_locked_metrics_db_never_stalls_a_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    db = tmp_path / "metrics.db"
    spend(db, "pricey", 0.1)
    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("PRAGMA locking_mode=EXCLUSIVE")
    locker.execute("BEGIN EXCLUSIVE")
    try:
        with OpenAIFake() as a, OpenAIFake() as b:
            text = config(a, b, db, budget="budget: {daily_usd: 1.0}").replace(
                f"metrics: {{sqlite: {{path: {db}}}}}",
                f"metrics: {{enabled: false, sqlite: {{path: {db}}}}}",
            )
            with Client(parse_config(text)) as c:
                a.push(Reply(text="answered"))
                # the read gives up after READ_TIMEOUT_S (the sink's busy timeout is 10 s)
                assert c.chat("hi").content == "answered"
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert "budgets cannot read the metrics database" in capsys.readouterr().err
