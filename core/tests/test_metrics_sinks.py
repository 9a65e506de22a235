"""The SQLite, JSONL and log sinks, option checking, and failing sinks reported once."""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from llmcore import hookimpl
from llmcore.errors import ConfigError
from llmcore.metrics import Metrics, MetricsEvent, MetricsSink
from llmcore.sinks.jsonl import JsonlSink
from llmcore.sinks.log import LogSink
from llmcore.sinks.sqlite import MIGRATIONS, SCHEMA_VERSION, SqliteSink, read_events
from llmcore.testing import StaticProvider


def ev(i: int = 0, **kw: Any) -> MetricsEvent:
    base: dict[str, Any] = dict(
        kind="request",
        provider="p",
        plugin="openai",
        model="gpt-4o",
        input_tokens=1000,
        output_tokens=100,
        latency_s=0.1 + i,
    )
    base.update(kw)
    return MetricsEvent(**base)


# -- sqlite ---------------------------------------------------------------------------------
def test_sqlite_schema_migrations_and_indexes(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    sink = SqliteSink({"path": str(db)})
    sink.emit(ev())
    sink.close()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    assert versions == [v for v, _ in MIGRATIONS]
    assert versions[-1] == SCHEMA_VERSION
    # exactly the indexes some query uses (time, kind, provider): each extra one costs
    # every insert a B-tree update
    assert _event_indexes(conn) == {
        "ix_events_time",
        "ix_events_kind_time",
        "ix_events_provider_time",
    }
    conn.close()
    # opening again applies nothing twice
    sink2 = SqliteSink({"path": str(db)})
    sink2.emit(ev(1))
    sink2.close()
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 2
    conn.close()


def _event_indexes(conn: sqlite3.Connection) -> set[str]:
    return {
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='events'"
        )
    }


def test_sqlite_migrates_a_version_1_database_keeping_its_events(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    for sql in MIGRATIONS[0][1]:
        conn.execute(sql)
    conn.execute("INSERT INTO schema_migrations VALUES (1, 0)")
    conn.execute("INSERT INTO events (time, kind, model, agent) VALUES (1.0, 'request', 'm', NULL)")
    conn.commit()
    assert "ix_events_model_time" in _event_indexes(conn)
    conn.close()
    sink = SqliteSink({"path": str(db)})
    sink.emit(ev(1))
    sink.close()
    conn = sqlite3.connect(db)
    assert [r[0] for r in conn.execute("SELECT version FROM schema_migrations")] == [1, 2]
    assert "ix_events_model_time" not in _event_indexes(conn)
    assert "ix_events_agent_time" not in _event_indexes(conn)
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 2
    conn.close()


def test_sqlite_prices_at_write_time_and_keeps_given_cost(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    sink = SqliteSink({"path": str(db)})
    sink.emit(ev())  # gpt-4o on an openai provider: $2.50/$10 per million
    sink.emit(ev(plugin="ollama", model="llama3.1:8b"))  # local: free
    sink.emit(ev(cost_usd=1.5))  # a cost someone already set wins
    sink.emit(ev(model="some-unknown-model"))  # unknown price stays unknown
    sink.close()
    costs = [e["cost_usd"] for e in read_events(db)]
    assert costs[0] == pytest.approx((1000 * 2.5 + 100 * 10.0) / 1e6)
    assert costs[1:] == [0.0, 1.5, None]


def test_sqlite_emit_never_waits_for_the_disk(tmp_path: Path) -> None:
    """While another process holds the write lock, emit still returns; the events are
    written once the lock is released (busy_timeout, not an error)."""
    db = tmp_path / "m.db"
    sink = SqliteSink({"path": str(db), "flush_interval": 0.02})
    sink.emit(ev())
    sink.flush()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    for i in range(50):
        sink.emit(ev(i))
    time.sleep(0.3)  # the writer has taken them and is waiting for the lock
    assert not sink._pending
    assert sink.written == 1 and sink.dropped == 0
    holder.execute("COMMIT")
    holder.close()
    sink.close()
    assert sink.written == 51 and sink.dropped == 0
    assert len(read_events(db)) == 51


WRITER = """
import sys
from llmcore.metrics import MetricsEvent
from llmcore.sinks.sqlite import SqliteSink
sink = SqliteSink({"path": sys.argv[1]})
for i in range(int(sys.argv[2])):
    sink.emit(MetricsEvent(kind="request", provider=sys.argv[3], input_tokens=i))
# no close(): the atexit hook must drain the queue
"""


def test_sqlite_two_processes_write_one_database(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(db), "400", name])
        for name in ("a", "b")
    ]
    for p in procs:
        assert p.wait(timeout=60) == 0
    events = read_events(db)
    assert len(events) == 800
    assert {e["provider"] for e in events} == {"a", "b"}
    assert sorted(e["input_tokens"] for e in events if e["provider"] == "a") == list(range(400))
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)
    conn.close()


def test_sqlite_unwritable_path_reported_once_and_requests_go_on(
    make_client: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")

    class P:
        @hookimpl
        def llmcore_register_providers(self) -> list[Any]:
            return [StaticProvider]

    client = make_client(
        f"""
providers: {{only: {{plugin: static, reply: fine}}}}
agents: {{}}
metrics: {{sinks: [sqlite], sqlite: {{path: {blocker}/metrics.db}}}}
""",
        P(),
    )
    for _ in range(3):
        assert client.chat("hi").content == "fine"
        client.runtime.metrics.sinks[0].flush()
    client.close()
    err = capsys.readouterr().err
    assert err.count("metrics sink sqlite failed and is ignored") == 1
    assert "not-a-dir" in err


def test_failing_sink_reported_once_by_dispatcher(
    capsys: pytest.CaptureFixture[str], plugin_manager: Any
) -> None:
    class Broken(MetricsSink):
        type_name = "broken"

        def emit(self, event: MetricsEvent) -> None:
            raise OSError(28, "No space left on device")

    got: list[MetricsEvent] = []

    class Fine(MetricsSink):
        type_name = "fine"

        def emit(self, event: MetricsEvent) -> None:
            got.append(event)

    m = Metrics(plugin_manager.hooks, [Broken(), Fine()])
    for i in range(5):
        m.emit(ev(i))
    assert len(got) == 5  # the broken sink never stops the others
    err = capsys.readouterr().err
    assert err.count("metrics sink broken failed") == 1 and "No space left" in err


def test_deliver_later_hands_events_over_after_the_emitting_callback(
    plugin_manager: Any,
) -> None:
    """The gateway's mode: an event emitted on the loop reaches the hook and the sinks
    once the callback that emitted it is over (after its answer is written), in the
    emitting request's context; from another thread it is delivered at once."""
    import asyncio
    import contextvars
    import threading

    who: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="-")
    got: list[tuple[str, str]] = []

    class Tagger:
        @hookimpl
        def llmcore_metrics_event(self, event: MetricsEvent) -> None:
            event.key_name = who.get()

    class Fine(MetricsSink):
        type_name = "fine"

        def emit(self, event: MetricsEvent) -> None:
            got.append((event.kind, event.key_name or ""))

    plugin_manager.register(Tagger())
    m = Metrics(plugin_manager.hooks, [Fine()])

    async def request(name: str) -> list[tuple[str, str]]:
        who.set(name)
        m.emit(MetricsEvent(kind="request"))
        seen = list(got)  # still in the emitting callback: nothing delivered yet
        await asyncio.sleep(0)
        return seen

    async def main() -> None:
        m.deliver_later(asyncio.get_running_loop())
        seen = await asyncio.gather(request("a"), request("b"))
        assert seen == [[], []]
        await asyncio.sleep(0)
        # each event carried its own request's context, not the loop's
        assert sorted(got) == [("request", "a"), ("request", "b")]
        got.clear()
        thread = threading.Thread(target=m.emit, args=(MetricsEvent(kind="attempt"),))
        thread.start()
        thread.join()
        assert got == [("attempt", "-")]  # another thread: delivered at once
        got.clear()
        m.deliver_later(None)
        m.emit(MetricsEvent(kind="request"))
        assert got == [("request", "-")]

    asyncio.run(main())


def test_sink_options_are_checked() -> None:
    with pytest.raises(
        ConfigError,
        match=r"metrics\.jsonl\.max_byte: unknown key, did you mean "
        r"max_bytes\?",
    ):
        JsonlSink({"max_byte": 10})
    with pytest.raises(ConfigError, match=r"metrics\.sqlite"):
        SqliteSink({"batch_size": "lots"})
    with pytest.raises(ConfigError, match="kv or json"):
        LogSink({"format": "xml"})


def test_config_sink_options_reach_the_sink(make_client: Any, tmp_path: Path) -> None:
    client = make_client(f"""
providers: {{}}
agents: {{}}
metrics:
  sinks: [jsonl]
  jsonl: {{path: {tmp_path}/x.jsonl, max_bytes: 1234, backups: 1}}
""")
    sink = client.runtime.metrics.sinks[0]
    assert isinstance(sink, JsonlSink)
    assert (sink.path, sink.opts.max_bytes, sink.opts.backups) == (tmp_path / "x.jsonl", 1234, 1)


# -- jsonl ------------------------------------------------------------------------------------
def test_jsonl_rotation_keeps_backups_and_newest_events(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sink = JsonlSink({"path": str(path), "max_bytes": 2000, "backups": 2})
    for i in range(60):
        sink.emit(ev(i, request_id=f"r{i}"))
    sink.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["events.jsonl", "events.jsonl.1", "events.jsonl.2"]
    kept: list[dict[str, Any]] = []
    for name in ("events.jsonl.2", "events.jsonl.1", "events.jsonl"):
        p = tmp_path / name
        assert p.stat().st_size <= 2000
        kept.extend(json.loads(line) for line in p.read_text().splitlines())
    ids = [int(e["request_id"][1:]) for e in kept]
    assert ids == list(range(ids[0], 60))  # contiguous, ending with the newest
    assert ids[0] > 0  # the oldest ones were rotated away


# -- log --------------------------------------------------------------------------------------
def test_log_sink_kv_and_json(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="llmcore.metrics")
    LogSink({}).emit(ev(model="gpt 4o"))
    LogSink({"format": "json"}).emit(ev(outcome="ProviderTimeoutError"))
    kv, js = (r.getMessage() for r in caplog.records)
    assert kv.startswith("kind=request provider=p") and 'model="gpt 4o"' in kv
    assert "cost_usd" not in kv  # None fields are left out
    assert json.loads(js)["outcome"] == "ProviderTimeoutError"
    assert all(r.name == "llmcore.metrics" for r in caplog.records)


def test_sinks_never_write_a_registered_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from llmcore.secrets import register_secret

    register_secret("sk-live-abcdef123456")
    caplog.set_level(logging.INFO, logger="llmcore.metrics")
    bad = ev(outcome="ProviderAuthError", message="401: key sk-live-abcdef123456 rejected")
    sink = JsonlSink({"path": str(tmp_path / "e.jsonl")})
    sink.emit(bad)
    sink.close()
    LogSink({}).emit(bad)
    db = SqliteSink({"path": str(tmp_path / "m.db")})
    db.emit(bad)
    db.close()
    texts = [(tmp_path / "e.jsonl").read_text(), caplog.text, str(read_events(tmp_path / "m.db"))]
    for text in texts:
        assert "rejected" in text and "sk-live-abcdef123456" not in text


def test_sqlite_writer_restarts_after_close_and_in_a_forked_child(tmp_path: Path) -> None:
    """The request path checks a flag, not the thread, for a running writer: the flag must
    fall when the writer stops (close) and in a forked child (which has no threads), or
    that process's events would queue forever."""
    import os

    db = tmp_path / "m.db"
    sink = SqliteSink({"path": str(db)})
    sink.emit(MetricsEvent(kind="request", provider="parent-1"))
    sink.close()
    sink.emit(MetricsEvent(kind="request", provider="parent-2"))  # a new writer starts
    sink.flush()
    pid = os.fork()
    if pid == 0:  # the child: emit, close (drains), and leave without pytest's teardown
        code = 1
        try:
            sink.emit(MetricsEvent(kind="request", provider="child"))
            sink.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    sink.close()
    assert sorted(e["provider"] for e in read_events(db)) == ["child", "parent-1", "parent-2"]
