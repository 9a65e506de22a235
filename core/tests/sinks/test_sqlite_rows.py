"""The SQLite sink's batched writer stores exactly what the events say.

The writer builds rows straight from the events and inserts many rows per statement,
naming only the columns a statement's rows fill; these tests pin that this gives the same
stored events (values, NULLs, redaction, pricing, order) as the plain one-row-per-event
insert of ``event_row(event.to_dict())`` would.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from llmcore.metrics import FIELDS, MetricsEvent
from llmcore.pricing import Unpriced
from llmcore.sinks import sqlite as sqlite_sink
from llmcore.sinks.sqlite import SqliteSink, read_events

KEY = "sk-proj-" + "A1b2C3d4" * 5  # key-shaped: redacted by pattern


def mixed_events(n: int) -> list[MetricsEvent]:
    """Events of every shape the router and runner emit, with different NULL columns."""
    out: list[MetricsEvent] = []
    for i in range(n):
        rid = f"r{i:05d}"
        shape = i % 5
        if shape == 0:
            out.append(
                MetricsEvent(
                    kind="attempt",
                    provider="a",
                    plugin="openai",
                    model="gpt-4o",
                    operation="chat",
                    latency_s=0.01 * i,
                    attempt=1,
                    request_id=rid,
                    time=1000.0 + i,
                )
            )
        elif shape == 1:
            out.append(
                MetricsEvent(
                    kind="request",
                    provider="a",
                    plugin="openai",
                    model="gpt-4o",
                    operation="chat",
                    input_tokens=1000 + i,
                    output_tokens=100,
                    latency_s=0.5,
                    attempts=1,
                    request_id=rid,
                    time=1000.0 + i,
                )
            )
        elif shape == 2:
            out.append(
                MetricsEvent(
                    kind="cooldown",
                    provider="b",
                    plugin="ollama",
                    outcome="rate limited",
                    status=429,
                    cooldown_until=2000.0 + i,
                    duration_s=30.0,
                    message=f"b until later, key {KEY}",
                    time=1000.0 + i,
                )
            )
        elif shape == 3:
            out.append(
                MetricsEvent(
                    kind="agent_run",
                    agent="claude-code",
                    outcome="ok",
                    duration_s=12.5,
                    files_changed=3,
                    session_id="s-1",
                    cost_usd=0.25,
                    input_tokens=10,
                    output_tokens=5,
                    time=1000.0 + i,
                )
            )
        else:
            out.append(
                MetricsEvent(
                    kind="request",
                    outcome="AllProvidersFailed",
                    attempts=2,
                    latency_s=1.0,
                    request_id=rid,
                    time=1000.0 + i,
                )
            )
    return out


def expected_rows(events: list[MetricsEvent]) -> list[dict[str, Any]]:
    """What the straightforward path stores: one ``event_row`` per ``to_dict``, priced."""
    from llmcore.registry import get_registry

    reg = get_registry(None)
    rows = []
    for e in events:
        d = e.to_dict()
        if d.get("cost_usd") is None:
            d["cost_usd"] = sqlite_sink.price_event(reg, d)
        row = sqlite_sink.event_row(d)
        rows.append(dict(zip((*sqlite_sink.COLUMNS, "pid", "extra"), row, strict=True)))
    return rows


def stored(db: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    rows = [dict(r) for r in conn.execute("SELECT * FROM events ORDER BY id")]
    conn.close()
    for r in rows:
        r.pop("id")
    return rows


@pytest.mark.parametrize("variable_limit", [32766, 999, 40])
def test_batched_rows_equal_one_insert_per_event(
    tmp_path: Path, variable_limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 999 is the limit of SQLite before 3.32; 40 forces one row per statement.
    monkeypatch.setattr(sqlite_sink, "_variable_limit", lambda conn: variable_limit)
    events = mixed_events(737)  # several statements per transaction, and a short last one
    db = tmp_path / "m.db"
    sink = SqliteSink({"path": str(db), "batch_size": 300})
    for e in events:
        sink.emit(e)
    sink.close()
    assert sink.written == len(events) and sink.dropped == 0
    got = stored(db)
    want = expected_rows(events)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g == w
    # the key never reaches the disk; the rest of the message does
    assert all(KEY not in (r["message"] or "") for r in got)
    assert any("b until later" in (r["message"] or "") for r in got)
    # ids follow emission order
    assert [r["time"] for r in got] == [e.time for e in events]


def test_read_back_as_events(tmp_path: Path) -> None:
    events = mixed_events(10)
    db = tmp_path / "m.db"
    sink = SqliteSink({"path": str(db)})
    for e in events:
        sink.emit(e)
    sink.close()
    back = read_events(db)
    assert [b["kind"] for b in back] == [e.kind for e in events]
    first_request = back[1]
    assert first_request["input_tokens"] == 1001
    assert first_request["cost_usd"] == pytest.approx((1001 * 2.5 + 100 * 10.0) / 1e6)
    failed = back[4]
    assert failed["provider"] is None and failed["cost_usd"] is None
    assert set(FIELDS) <= set(back[0])


def test_a_null_outcome_is_refused_not_defaulted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Columns the schema declares NOT NULL are always named, so a bad event fails its
    batch (reported once) instead of being stored with the column's DEFAULT."""
    db = tmp_path / "m.db"
    sink = SqliteSink({"path": str(db)})
    bad = MetricsEvent(kind="request")
    bad.outcome = None  # type: ignore[assignment]
    sink.emit(bad)
    sink.close()
    assert sink.written == 0 and sink.dropped == 1
    assert "NOT NULL" in capsys.readouterr().err


def test_metrics_listening_tells_emitters_whether_to_build_events(plugin_manager: Any) -> None:
    from llmcore import hookimpl
    from llmcore.metrics import Metrics, MetricsSink

    got: list[MetricsEvent] = []

    class Keep(MetricsSink):
        type_name = "keep"

        def emit(self, event: MetricsEvent) -> None:
            got.append(event)

    assert not Metrics(plugin_manager.hooks, []).listening
    with_sink = Metrics(plugin_manager.hooks, [Keep()])
    assert with_sink.listening
    with_sink.emit(MetricsEvent(kind="request"))
    assert [e.kind for e in got] == ["request"]

    class Hook:
        @hookimpl
        def llmcore_metrics_event(self, event: MetricsEvent) -> None:
            got.append(event)

    plugin_manager.register(Hook())
    with_hook = Metrics(plugin_manager.hooks, [])
    assert with_hook.listening
    with_hook.emit(MetricsEvent(kind="attempt"))
    assert [e.kind for e in got] == ["request", "attempt"]


def test_to_dict_has_every_field_and_redacts_the_message() -> None:
    import attrs

    e = MetricsEvent(
        kind="cooldown",
        provider="b",
        status=429,
        cooldown_until=5.0,
        message=f"rate limited with {KEY}",
    )
    d = e.to_dict()
    want = attrs.asdict(e)
    assert KEY not in d["message"] and "rate limited with" in d["message"]
    want["message"] = d["message"]
    assert d == want and list(d) == list(FIELDS)

    @attrs.define
    class WithMore(MetricsEvent):
        gpu: str | None = None

    more = WithMore(kind="request", gpu="a100").to_dict()
    assert more["gpu"] == "a100" and set(FIELDS) < set(more)


def test_stored_values_are_those_at_emit_time(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    sink = SqliteSink({"path": str(db), "flush_interval": 60})
    e = MetricsEvent(kind="request", provider="a", latency_s=0.5)
    sink.emit(e)
    e.provider, e.latency_s = "changed later", 9.0  # before the writer has run
    sink.close()
    (row,) = read_events(db)
    assert (row["provider"], row["latency_s"]) == ("a", 0.5)


def test_writer_remembers_unpriced_models_without_losing_prices() -> None:
    """The writer skips the price lookup for a (model, plugin) the registry cannot price,
    and that memory never costs a priced model (or the same model elsewhere) its cost."""
    from llmcore.registry import get_registry

    reg = get_registry(None)
    assert reg.price("gpt-4o", "openai") is not None  # the bundled registry prices it

    def req(model: str, plugin: str, tin: int) -> tuple[Any, ...]:
        return sqlite_sink.values_of(
            MetricsEvent(
                kind="request",
                provider="p",
                plugin=plugin,
                model=model,
                operation="chat",
                input_tokens=tin,
                output_tokens=10,
            )
        )

    unpriced = Unpriced()
    first = sqlite_sink.rows_of([req("no-such-model-xyz", "openai", 5)], 1, reg, unpriced)
    assert first[0][sqlite_sink.COLUMNS.index("cost_usd")] is None
    assert ("no-such-model-xyz", "openai") in unpriced
    rows = sqlite_sink.rows_of(
        [req("no-such-model-xyz", "openai", 7), req("gpt-4o", "openai", 1000)], 1, reg, unpriced
    )
    cost = sqlite_sink.COLUMNS.index("cost_usd")
    assert rows[0][cost] is None
    assert rows[1][cost] == pytest.approx(
        reg.cost("gpt-4o", "openai", {"input_tokens": 1000, "output_tokens": 10})
    )
    assert ("gpt-4o", "openai") not in unpriced
    # A local plugin prices everything at 0: the same model there is not "unpriced".
    local = next(iter(reg.local_types))
    again = sqlite_sink.rows_of([req("no-such-model-xyz", local, 5)], 1, reg, unpriced)
    assert again[0][cost] == 0.0
