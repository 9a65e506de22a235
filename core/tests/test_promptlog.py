"""Prompt/response logs: recorded off the request path, redacted, searchable, pruned, 0600;
``llmcore logs`` as a user runs it (a subprocess)."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from llmcore import Client
from llmcore.config import parse_config
from llmcore.errors import AllProvidersFailed
from llmcore.promptlog import PromptLog, connect, prune, query
from llmcore.testing.fakes import OpenAIFake, Reply

CANARY = "sk-canary-0123456789abcdefXYZ"


def config(fake: OpenAIFake, tmp_path: Path, logs: str = "enabled: true") -> str:
    return f"""
providers:
  o:
    plugin: openai
    base_url: {fake.base_url}
    models: [m]
    api_key: {CANARY}
logs: {{{logs}, path: {tmp_path / "logs.db"}}}
metrics: {{enabled: false}}
routing: {{state: memory}}
"""


def cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmcore", "--config", str(cfg), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )


def test_a_conversation_is_logged_redacted_and_found(tmp_path: Path) -> None:
    with OpenAIFake() as fake, Client(parse_config(config(fake, tmp_path))) as c:
        fake.push(Reply(text="the first answer", usage=(5, 3)), Reply(text=f"echoing {CANARY}"))
        conv = c.conversation(system="be brief")
        conv.send(f"my key is {CANARY}, remember the word walrus")
        "".join(ch.content for ch in conv.stream("and again"))
        c.features.log.flush()
    db = tmp_path / "logs.db"
    raw = db.read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("logs.db-*"))
    assert CANARY.encode() not in raw  # not in any page, WAL included
    rows = query(db, limit=None)
    assert [r["prompt"] for r in rows] == ["my key is ***, remember the word walrus", "and again"]
    assert rows[0]["response"] == "the first answer"
    assert rows[1]["response"] == "echoing ***"
    assert rows[0]["conversation_id"] == rows[1]["conversation_id"] == conv.cid
    assert rows[0]["system"] == "be brief"
    assert (rows[0]["provider"], rows[0]["model"]) == ("o", "m")
    assert (rows[0]["input_tokens"], rows[0]["output_tokens"]) == (5, 3)
    assert rows[0]["attempts"][0]["ok"] is True and rows[0]["latency_s"] > 0
    # the second call carried the first turn
    assert [m["content"] for m in rows[1]["messages"]] == [
        "be brief",
        "my key is ***, remember the word walrus",
        "the first answer",
        "and again",
    ]
    found = query(db, search="walrus")
    assert [r["id"] for r in found] == [rows[0]["id"]]
    assert query(db, search="nowhere-to-be-found") == []
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_off_by_default_and_per_call_switches(tmp_path: Path) -> None:
    with OpenAIFake() as fake:
        with Client(parse_config(config(fake, tmp_path, "enabled: false"))) as c:
            fake.push(Reply(text="a"), Reply(text="b"))
            c.chat("not logged")
            c.chat("logged on request", log=True)
        with Client(parse_config(config(fake, tmp_path))) as c:
            fake.push(Reply(text="c"))
            c.chat("left out", log=False)
    assert [r["prompt"] for r in query(tmp_path / "logs.db", limit=None)] == ["logged on request"]


def test_a_failed_call_is_logged_with_its_attempts(tmp_path: Path) -> None:
    with OpenAIFake() as fake, Client(parse_config(config(fake, tmp_path))) as c:
        fake.push(Reply(status=401, text="bad key"))
        with pytest.raises(AllProvidersFailed):
            c.chat("will fail")
    (row,) = query(tmp_path / "logs.db")
    assert row["error"].startswith("AllProvidersFailed") and row["response"] is None
    assert row["attempts"][0]["status"] == 401


def test_retention_by_age_and_size(tmp_path: Path) -> None:
    db = tmp_path / "logs.db"
    log = PromptLog(db)
    old = time.time() - 10 * 86400
    for i in range(5):
        log.record({"id": f"old{i}", "time": old + i, "prompt": "x" * 1000, "response": "y"})
    for i in range(5):
        log.record(
            {"id": f"new{i}", "time": time.time() + i, "prompt": "z" * 300_000, "response": "w"}
        )
    log.close()
    conn = connect(db)
    try:
        assert prune(conn, max_age_days=7, max_size_mb=None) == 5
        assert prune(conn, max_age_days=None, max_size_mb=1.0) == 2  # 5 x 0.3 MB: 3 fit
    finally:
        conn.close()
    assert [r["id"] for r in query(db, limit=None)] == ["new2", "new3", "new4"]


def test_migrations_run_once_and_fts_is_used_when_available(tmp_path: Path) -> None:
    db = tmp_path / "logs.db"
    connect(db).close()
    connect(db).close()
    conn = sqlite3.connect(db)
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    has_fts5 = any("FTS5" in r[0] for r in conn.execute("PRAGMA compile_options"))
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert versions == [1]
    assert ("responses_fts" in names) == has_fts5


@pytest.mark.slow  # runs `python -m llmcore` thirteen times (~0.5 s of start-up each)
def test_logs_command(tmp_path: Path) -> None:
    with OpenAIFake() as fake:
        cfg = tmp_path / "llmcore.yaml"
        cfg.write_text(config(fake, tmp_path, "enabled: false"))
        fake.push(Reply(text="answer one"), Reply(text="answer two"), Reply(text="other"))
        assert cli(cfg, "chat", "--log", "--no-stream", "first question").returncode == 0
        out = cli(cfg, "chat", "-c", "--no-stream", "follow up")
        assert out.returncode == 0, out.stderr
        assert cli(cfg, "chat", "--log", "--no-stream", "unrelated").returncode == 0
        # -c sent the previous turn (the fake recorded it)
        assert [m["content"] for m in fake.requests[1].json["messages"]] == [
            "first question",
            "answer one",
            "follow up",
        ]
        data = json.loads(cli(cfg, "logs", "--json", "-n", "0").stdout)
        assert [e["prompt"] for e in data["entries"]] == [
            "first question",
            "follow up",
            "unrelated",
        ]
        cid = data["entries"][0]["conversation_id"]
        conv = json.loads(cli(cfg, "logs", "--json", "--cid", cid).stdout)
        assert [e["response"] for e in conv["entries"]] == ["answer one", "answer two"]
        last = json.loads(cli(cfg, "logs", "--json", "-c").stdout)
        assert [e["prompt"] for e in last["entries"]] == ["unrelated"]
        hit = json.loads(cli(cfg, "logs", "--json", "--search", "follow").stdout)
        assert [e["prompt"] for e in hit["entries"]] == ["follow up"]
        assert json.loads(cli(cfg, "logs", "--json", "--model", "nope").stdout)["entries"] == []
        plain = cli(cfg, "logs", "-n", "1")
        assert "prompt: unrelated" in plain.stdout and "answer: other" in plain.stdout
        bad = cli(cfg, "logs", "--json", "--since", "yesterday-ish")
        assert bad.returncode == 2 and json.loads(bad.stdout)["ok"] is False
        missing = cli(cfg, "chat", "--cid", "no-such-id", "hi")
        assert missing.returncode == 1 and "no logged conversation" in missing.stderr


def test_an_agent_runs_controls_are_not_logged_as_options() -> None:
    import threading

    from llmcore.promptlog import entry_of
    from llmcore.types import ChatRequest, Message

    request = ChatRequest(
        messages=[Message("user", "fix it")],
        temperature=0.0,
        extra={"cwd": "/work", "on_event": print, "cancel": threading.Event()},
    )
    options = json.loads(entry_of(request)["options"])
    assert options == {"temperature": 0.0, "cwd": "/work"}
