"""Budgets apply to the gateway: what ``llmcore serve`` answers is counted in the metrics
database the budgets read, and a provider over its budget is then skipped for gateway
requests, like for the library."""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.request
from pathlib import Path

import pytest
from gateway_support import GatewayProcess
from llmcore.budgets import REFRESH_S, period_starts
from llmcore.sinks.sqlite import connect, event_row, insert_rows
from llmcore.testing.fakes import OpenAIFake, Reply


def _pricey_spending(db: Path) -> float:
    if not db.is_file():
        return 0.0
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    try:
        return float(
            conn.execute(
                "SELECT coalesce(sum(cost_usd), 0) FROM events WHERE kind = 'request' "
                "AND outcome = 'ok' AND provider = 'pricey'"
            ).fetchone()[0]
        )
    except sqlite3.OperationalError:  # the writer has not made the table yet
        return 0.0
    finally:
        conn.close()


def _stream(gw: GatewayProcess, body: dict[str, object]) -> str:
    """The text of a streamed chat completion through the gateway."""
    req = urllib.request.Request(
        gw.url + "/v1/chat/completions",
        method="POST",
        data=json.dumps({**body, "stream": True}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        lines = r.read().decode().splitlines()
    events = [json.loads(ln[6:]) for ln in lines if ln.startswith("data: {")]
    return "".join(
        e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices")
    )


def test_gateway_requests_count_and_an_over_budget_provider_is_skipped(tmp_path: Path) -> None:
    db = tmp_path / "metrics.db"
    with OpenAIFake() as pricey, OpenAIFake() as cheap:
        config = (
            "providers:\n"
            f"  pricey:\n    plugin: openai\n    base_url: {pricey.base_url}\n"
            "    models: [m]\n    retry: {max_attempts: 1}\n"
            # 100000 USD per million tokens: 16 tokens cost $1.60; two answers are over
            # the $2 a day
            "    cost: {input_per_million: 100000, output_per_million: 100000}\n"
            "    budget: {daily_usd: 2.0}\n"
            f"  cheap:\n    plugin: openai\n    base_url: {cheap.base_url}\n"
            "    models: [m]\n"
            "routing: {state: memory}\n"
            f"metrics: {{sinks: [sqlite], sqlite: {{path: {db}}}}}\n"
            "serve:\n  models:\n    chat: [pricey/m, cheap/m]\n"
        )
        pricey.push(
            Reply(text="from pricey", usage=(10, 6)),
            Reply(text="streamed from pricey", usage=(10, 6)),
        )
        cheap.push(Reply(text="from cheap"))
        with GatewayProcess(tmp_path, config) as gw:
            body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
            status, first, headers = gw.post("/v1/chat/completions", body)
            assert status == 200, (first, gw.stderr())
            assert first["choices"][0]["message"]["content"] == "from pricey"
            assert headers["X-Llmcore-Provider"] == "pricey"
            assert "streamed from pricey" in _stream(gw, body)  # $1.60 more: over now
            # The gateway's requests, streamed too, reach the metrics db with their cost
            # (the sqlite writer batches, so wait for it; generous for a loaded machine).
            deadline = time.monotonic() + 60
            while _pricey_spending(db) < 3.0 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _pricey_spending(db) == pytest.approx(3.2), gw.stderr()
            time.sleep(REFRESH_S + 0.5)  # the worker's budget sums are cached that long
            status, second, headers = gw.post("/v1/chat/completions", body)
            assert status == 200, (second, gw.stderr())
            assert headers["X-Llmcore-Provider"] == "cheap"
            assert second["choices"][0]["message"]["content"] == "from cheap"
    assert len(pricey.requests) == 2  # then skipped without a network call
    assert len(cheap.requests) == 1
    conn = sqlite3.connect(db)
    try:
        skipped = conn.execute(
            "SELECT message FROM events WHERE kind = 'attempt' AND "
            "provider = 'pricey' AND outcome = 'skipped'"
        ).fetchall()
    finally:
        conn.close()
    assert skipped == [("over its daily budget: $3.2000 of $2.00 spent",)]


def _spend(db: Path, provider: str, usd: float) -> None:
    conn = connect(db)
    try:
        insert_rows(
            conn,
            [
                event_row(
                    {
                        "kind": "request",
                        "provider": provider,
                        "outcome": "ok",
                        "cost_usd": usd,
                        "time": time.time(),
                    }
                )
            ],
        )
    finally:
        conn.close()


def test_spent_budgets_are_a_429_with_the_reason_and_when_to_retry(tmp_path: Path) -> None:
    """Every provider of a served model over its budget, or ``routing.budget`` spent: the
    client gets 429 saying so, with ``Retry-After`` up to the reset (not a 502, not
    "cooling down"), and nothing reaches the upstream."""
    db = tmp_path / "metrics.db"
    _spend(db, "pricey", 2.0)
    reset = period_starts()["daily"][1]
    with OpenAIFake() as pricey:
        base = (
            "providers:\n"
            f"  pricey:\n    plugin: openai\n    base_url: {pricey.base_url}\n"
            "    models: [m]\n    budget: {daily_usd: 1.0}\n"
            "routing:\n  state: memory\n  {glob}\n"
            f"metrics: {{sinks: [sqlite], sqlite: {{path: {db}}}}}\n"
            "serve:\n  models:\n    chat: [pricey/m]\n"
        )
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
        for glob, says in (
            (
                "",
                "every provider for 'chat' is over its budget (pricey: "
                "over its daily budget: $2.0000 of $1.00 spent)",
            ),
            (
                "budget: {daily_usd: 1.5}",
                "the daily budget of $1.50 (routing.budget.daily_usd) is spent",
            ),
        ):
            (tmp_path / glob[:6]).mkdir(exist_ok=True)
            with GatewayProcess(tmp_path / glob[:6], base.replace("{glob}", glob)) as gw:
                status, got, headers = gw.post("/v1/chat/completions", body)
                assert status == 429, (got, gw.stderr())
                assert says in got["error"]["message"]
                wait = int(headers["Retry-After"])
                assert 0 < wait <= reset - time.time() + 5
    assert pricey.requests == []
