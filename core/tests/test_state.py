"""Cooldown stores: memory, file (shared by processes, survives restarts, recovers from a
corrupt file) and an unreachable Redis. Against a real redis-server: tests/test_state_redis.py."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from llmcore.errors import ConfigError
from llmcore.state import Cooldown, FileStore, MemoryStore, RedisStore, open_store


def test_memory_store_keeps_the_later_cooldown_and_forgets_ended_ones() -> None:
    s = MemoryStore()
    now = time.time()
    s.put(Cooldown("a", now + 100, "rate limited"))
    s.put(Cooldown("a", now + 10, "shorter"))  # must not shorten the running one
    s.put(Cooldown("b", now + 0.05))
    assert s.active()["a"].until == pytest.approx(now + 100)
    assert set(s.active()) == {"a", "b"}
    assert set(s.active(now + 1)) == {"a"}
    s.clear("a")
    assert "a" not in s.active()


def test_open_store_specs(tmp_path: Path) -> None:
    assert isinstance(open_store("memory"), MemoryStore)
    fs = open_store(f"file:{tmp_path / 'x.json'}")
    assert isinstance(fs, FileStore) and fs.path == tmp_path / "x.json"
    default = open_store("file")
    assert isinstance(default, FileStore) and default.path.name == "state.json"
    assert "llmcore" in str(default.path)
    with pytest.raises(ConfigError, match=r"redis://HOST:PORT"):
        open_store("etcd://somewhere")


def test_file_store_survives_a_restart_and_writes_valid_json(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    FileStore(path).put(Cooldown("openai/gpt-4o", time.time() + 60, "rate limited"))
    again = FileStore(path)  # a new process would start exactly like this
    got = again.active()["openai/gpt-4o"]
    assert got.reason == "rate limited" and got.until > time.time() + 50
    data = json.loads(path.read_text())
    assert data["version"] == 1 and "openai/gpt-4o" in data["cooldowns"]
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed away


def test_file_store_rereads_only_when_the_file_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    writer, reader = FileStore(path), FileStore(path, recheck=0.0)
    writer.put(Cooldown("a", time.time() + 60))
    reads: list[int] = []
    real = reader._read

    def counting() -> Any:
        reads.append(1)
        return real()

    monkeypatch.setattr(reader, "_read", counting)
    for _ in range(50):
        assert "a" in reader.active()
    assert len(reads) == 1  # 50 checks, one read: the mtime did not change
    time.sleep(0.01)  # let the mtime move on coarse clocks
    writer.put(Cooldown("b", time.time() + 60))
    assert set(reader.active()) == {"a", "b"}
    assert len(reads) == 2
    lazy = FileStore(path, recheck=60.0)
    assert set(lazy.active()) == {"a", "b"}
    writer.put(Cooldown("c", time.time() + 60))
    assert "c" not in lazy.active()  # within its recheck interval it trusts its snapshot


def test_corrupt_state_file_is_reported_once_and_replaced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"version": 1, "cooldowns": {"a": {"until": ')
    store = FileStore(path, recheck=0.0)
    assert dict(store.active()) == {}
    assert dict(store.active()) == {}
    err = capsys.readouterr().err
    assert err.count("was unreadable") == 1 and str(path) in err
    assert json.loads(path.read_text()) == {"version": 1, "cooldowns": {}}
    store.put(Cooldown("b", time.time() + 30))
    assert "b" in FileStore(path).active()
    path.write_bytes(b"\xff\xfe not even text")  # binary garbage: still no crash
    assert "b" not in FileStore(path).active()
    assert json.loads(path.read_text())["cooldowns"] == {}


_HAMMER = textwrap.dedent("""
    import sys, time
    from llmcore.state import Cooldown, FileStore
    path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = FileStore(path, recheck=0.0)
    for i in range(n):
        store.put(Cooldown(f"{tag}-{i}", time.time() + 600, "hammer"))
        store.active()
        if i % 10 == 0:
            store.clear(f"{tag}-{i}")
    print("done")
""")


def test_two_processes_hammering_the_file_store_leave_it_valid(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    script = tmp_path / "hammer.py"
    script.write_text(_HAMMER)
    n = 150
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(path), tag, str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("x", "y")
    ]
    reader = FileStore(path, recheck=0.0)
    while any(p.poll() is None for p in procs):
        reader.active()  # a reader during the writes must never see half a file
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0 and out.strip() == "done", err
        assert "unreadable" not in err
    data = json.loads(path.read_text())
    expected = {f"{t}-{i}" for t in ("x", "y") for i in range(n) if i % 10}
    assert set(data["cooldowns"]) == expected  # no write lost, no clear undone
    assert not list(tmp_path.glob(".*.tmp"))


# -- Redis, unreachable (no server needed) -------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_unreachable_redis_is_reported_once_and_never_raises(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"redis://:hunter2-redis-pw@127.0.0.1:{free_port()}/0"
    store = RedisStore(url, recheck=0.0, timeout=0.2)
    assert dict(store.active()) == {}
    store.put(Cooldown("a", time.time() + 60))  # kept in memory
    assert "a" in store.active()
    assert store.sync() is False and not store.healthy
    assert "a" in store.active()
    store.close()
    err = capsys.readouterr().err
    assert err.count("llmcore: cooldown store") == 1
    assert "hunter2" not in err + repr(store) and "redis://***@127.0.0.1" in err


# -- through the router ----------------------------------------------------------------------
_CHAT_ONCE = textwrap.dedent("""
    import sys
    from llmcore.client import Client
    from llmcore.config import parse_config
    from llmcore.errors import AllProvidersFailed
    client = Client(parse_config(open(sys.argv[1]).read()))
    try:
        print(client.chat("hi").provider)
    except AllProvidersFailed as exc:
        print("failed:", exc.attempts[-1].error_type)
""")


def _two_fakes_config(a_url: str, b_url: str, state: str) -> str:
    return textwrap.dedent(f"""
        providers:
          a: {{plugin: openai, base_url: '{a_url}', api_key: k-test-1234, models: [m1]}}
          b: {{plugin: openai, base_url: '{b_url}', api_key: k-test-1234, models: [m1]}}
        agents: {{}}
        metrics: {{sinks: []}}
        routing: {{state: '{state}', cooldown: {{rate_limit_seconds: 600}}}}
    """)


def test_a_429_cooldown_survives_a_restart(tmp_path: Path) -> None:
    from llmcore.client import Client
    from llmcore.config import parse_config
    from llmcore.testing.fakes.base import Reply
    from llmcore.testing.fakes.openai import OpenAIFake

    with OpenAIFake(default=Reply(status=429)) as a, OpenAIFake() as b:
        state = tmp_path / "state.json"
        config = tmp_path / "llmcore.yaml"
        config.write_text(_two_fakes_config(a.base_url, b.base_url, f"file:{state}"))
        script = tmp_path / "chat_once.py"
        script.write_text(_CHAT_ONCE)
        # First process: a answers 429, b answers; the process exits.
        out = subprocess.run(
            [sys.executable, str(script), str(config)], capture_output=True, text=True, timeout=60
        )
        assert out.stdout.strip() == "b", out.stderr
        assert len(a.requests) == 1
        assert "a/m1" in json.loads(state.read_text())["cooldowns"]
        # After the "restart": a is skipped without a call, for the cooldown's 600 s.
        client = Client(parse_config(config.read_text()))
        resp = client.chat("hi")
        assert resp.provider == "b" and len(a.requests) == 1
        assert resp.attempts[0].skipped and resp.attempts[0].cooldown_until is not None
        assert resp.attempts[0].cooldown_until > time.time() + 590
        client.close()
