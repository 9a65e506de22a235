"""The SQLite sink never delays a request: a database locked by another process or a
corrupt one costs the CLI at most a moment at exit, the lost events are reported once
and counted for `llmcore doctor`, and `llmcore usage` on a corrupt file is a clear error."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from llmcore.sinks.sqlite import lost_events
from llmcore.testing.fakes.openai import OpenAIFake

_HOLD = textwrap.dedent("""
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    sys.stdin.readline()  # hold the lock until the test says so
    conn.execute("ROLLBACK")
""")


def _config(tmp_path: Path, base_url: str, db: Path) -> Path:
    path = tmp_path / "llmcore.yaml"
    path.write_text(
        textwrap.dedent(f"""
        providers:
          fake: {{plugin: openai, base_url: '{base_url}', api_key: k-test-1234, models: [m1]}}
        agents: {{}}
        routing: {{state: memory}}
        metrics: {{sinks: [sqlite], sqlite: {{path: '{db}'}}}}
    """)
    )
    return path


def _llmcore(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmcore", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_a_locked_database_delays_nothing_and_the_lost_events_are_counted(tmp_path: Path) -> None:
    db = tmp_path / "metrics.db"
    from llmcore.sinks.sqlite import connect

    connect(db).close()  # an existing database, as after earlier runs
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with OpenAIFake() as fake:
            cfg = _config(tmp_path, fake.base_url, db)
            out = _llmcore("--config", str(cfg), "chat", "hi", cwd=tmp_path)
            assert out.returncode == 0, out.stderr
            assert out.stdout.strip() == "Hello from the fake server."  # the answer is whole
            # The chat did not wait for the lock: the holder still holds it.
            assert holder.poll() is None
            assert out.stderr.count("llmcore: metrics sink sqlite") == 1, out.stderr
            assert "event(s)" in out.stderr and "llmcore doctor" in out.stderr
            assert "Traceback" not in out.stderr
            lost = lost_events(db)
            assert lost is not None and lost["lost"] >= 1 and "locked" in lost["error"]
            doctor = _llmcore("--config", str(cfg), "doctor", "--json", cwd=tmp_path)
            rows = [
                c
                for c in json.loads(doctor.stdout)["checks"]
                if c["component"] == "sink" and c["name"] == "sqlite"
            ]
            assert rows and rows[0]["status"] == "lost events"
            assert f"{lost['lost']} event(s) could not be written" in rows[0]["detail"]
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=30)
        if holder.stdout is not None:
            holder.stdout.close()
    # With the lock gone, the next run writes its events again.
    with OpenAIFake() as fake:
        out = _llmcore(
            "--config", str(_config(tmp_path, fake.base_url, db)), "chat", "hi", cwd=tmp_path
        )
        assert out.returncode == 0 and "metrics sink" not in out.stderr, out.stderr
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM events WHERE kind='request'").fetchone()[0] >= 1
    conn.close()


def test_usage_on_a_corrupt_database_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "metrics.db"
    db.write_bytes(b"this is not a database, just some text" * 100)
    cfg = tmp_path / "llmcore.yaml"
    cfg.write_text(f"metrics: {{sinks: [sqlite], sqlite: {{path: '{db}'}}}}\n")
    out = _llmcore("--config", str(cfg), "usage", cwd=tmp_path)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert f"cannot read the metrics database {db}" in out.stderr
    assert "move it aside" in out.stderr
    assert db.read_bytes().startswith(b"this is not a database")  # nothing overwritten
