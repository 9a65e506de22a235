"""State that cannot be poisoned: whatever a state file holds, whatever a server's
Retry-After says, whatever the wall clock does, requests go on and nothing is lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from llmcore.client import Client
from llmcore.config import parse_config
from llmcore.state import MAX_COOLDOWN, Cooldown, FileStore, MemoryStore
from llmcore.testing.fakes.base import Reply
from llmcore.testing.fakes.openai import OpenAIFake


def _config(a_url: str, b_url: str, state: str, extra: str = "") -> str:
    return textwrap.dedent(f"""
        providers:
          a: {{plugin: openai, base_url: '{a_url}', api_key: k-test-1234, models: [m1]}}
          b: {{plugin: openai, base_url: '{b_url}', api_key: k-test-1234, models: [m1]}}
        agents: {{}}
        metrics: {{sinks: []}}
        routing: {{state: '{state}'{extra}}}
    """)


@pytest.mark.parametrize("after", ["inf", "999999999", "nan", "-5"])
def test_an_absurd_retry_after_cools_at_most_max_cooldown_and_b_answers(
    tmp_path: Path, after: str
) -> None:
    state = tmp_path / "state.json"
    with (
        OpenAIFake(default=Reply(status=429, headers={"Retry-After": after})) as a,
        OpenAIFake() as b,
    ):
        client = Client(parse_config(_config(a.base_url, b.base_url, f"file:{state}")))
        resp = client.chat("hi")
        assert resp.provider == "b" and resp.content == "Hello from the fake server."
        # (nan and -5 parse as 0 s: no cooldown, so maybe no file.)
        raw = state.read_text() if state.exists() else '{"cooldowns": {}}'
        assert "Infinity" not in raw and "NaN" not in raw
        data = json.loads(raw)  # strict JSON, readable by anyone
        until = data["cooldowns"].get("a/m1", {}).get("until", time.time())
        assert until <= time.time() + MAX_COOLDOWN + 1  # never 31 years
        # ... and every later request, in this process and a new one, still works.
        assert client.chat("again").provider == "b"
        client.close()
        again = Client(parse_config(_config(a.base_url, b.base_url, f"file:{state}")))
        assert again.chat("hi").provider == "b"
        again.close()


def test_max_cooldown_is_configurable(tmp_path: Path) -> None:
    with (
        OpenAIFake(default=Reply(status=429, headers={"Retry-After": "inf"})) as a,
        OpenAIFake() as b,
    ):
        client = Client(
            parse_config(_config(a.base_url, b.base_url, "memory", ", max_cooldown: 5"))
        )
        resp = client.chat("hi")
        cooled = resp.attempts[0]
        assert cooled.cooldown_until is not None
        assert cooled.cooldown_until <= time.time() + 5.1
        client.close()


_POISON: list[tuple[str, Any]] = [
    ("infinity", '{"version": 1, "cooldowns": {"a/m1": {"until": Infinity}}}'),
    ("nan", '{"version": 1, "cooldowns": {"a/m1": {"until": NaN, "reason": "x"}}}'),
    ("string", '{"version": 1, "cooldowns": {"a/m1": {"until": "soon"}}}'),
    ("list", '{"version": 1, "cooldowns": [1, 2, 3]}'),
    ("top-level list", "[]"),
    ("deep", '{"version": 1, "cooldowns": ' + "[" * 200_000 + "]" * 200_000 + "}"),
    ("binary", b"\x00\xff\xfe\x80"),
    ("huge", '{"version": 1, "cooldowns": {}, "pad": "' + "x" * (5 * 1024 * 1024) + '"}'),
]


@pytest.mark.parametrize("name,content", _POISON, ids=[p[0] for p in _POISON])
def test_a_poisoned_state_file_never_fails_a_request(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], name: str, content: Any
) -> None:
    state = tmp_path / "state.json"
    if isinstance(content, bytes):
        state.write_bytes(content)
    else:
        state.write_text(content)
    with OpenAIFake() as a, OpenAIFake() as b:
        client = Client(parse_config(_config(a.base_url, b.base_url, f"file:{state}")))
        for _ in range(3):
            resp = client.chat("hi")
            assert resp.provider == "a"  # the poisoned entry for a/m1 cooled nothing
        client.close()
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert err.count("llmcore: ") == 1  # one clear warning, not one per request
    assert "unreadable" in err or "invalid cooldown" in err
    assert str(state) in err


def test_one_bad_entry_is_dropped_and_the_good_ones_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state.json"
    good = time.time() + 60
    state.write_text(
        json.dumps(
            {
                "version": 1,
                "cooldowns": {
                    "ok": {"until": good, "reason": "rate limited"},
                    "bad": {"until": "never"},
                    "x" * 1000: {"until": good},
                },
            }
        )
    )
    store = FileStore(state)
    assert set(store.active()) == {"ok"}
    assert store.active()["ok"].reason == "rate limited"
    assert capsys.readouterr().err.count("ignored 2 invalid cooldown value(s)") == 1


def test_a_store_put_never_stores_an_infinite_or_overlong_cooldown(tmp_path: Path) -> None:
    for store in (MemoryStore(max_cooldown=100), FileStore(tmp_path / "s.json", max_cooldown=100)):
        store.put(Cooldown("inf", float("inf")))
        store.put(Cooldown("nan", float("nan")))
        store.put(Cooldown("long", time.time() + 10**9, "31 years"))
        got = store.active()
        assert set(got) == {"long"}
        assert got["long"].until <= time.time() + 100.5
    json.loads((tmp_path / "s.json").read_text())  # still strict JSON


def test_cooldowns_in_a_process_ignore_wall_clock_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores = [MemoryStore(), FileStore(tmp_path / "s.json", recheck=0.0)]
    for store in stores:
        store.put(Cooldown("a", time.time() + 0.3, "30 s, scaled down"))
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 3600)  # the clock steps back an hour
    for store in stores:
        assert "a" in store.active()
    time.sleep(0.4)
    for store in stores:
        assert "a" not in store.active(), store  # ended on time, not 3600 s later
    monkeypatch.setattr(time, "time", lambda: real() + 3600)  # and forward
    s = MemoryStore()
    s.put(Cooldown("b", time.time() + 30))
    assert "b" in s.active()


_WRITER = textwrap.dedent("""
    import sys, time
    from llmcore.state import Cooldown, FileStore
    store = FileStore(sys.argv[1], recheck=0.0)
    i = 0
    print("ready", flush=True)
    while True:
        i += 1
        store.put(Cooldown(f"k{i % 50}", time.time() + 600, "x" * 2000))
""")


def test_writers_killed_mid_write_leave_no_temp_files_behind(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    for _ in range(8):
        p = subprocess.Popen(
            [sys.executable, str(script), str(state)], stdout=subprocess.PIPE, text=True
        )
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        time.sleep(0.05)
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        p.stdout.close()
    # Leftovers a killed writer may leave, plus one planted for certain:
    (tmp_path / ".state.json.999999.1.tmp").write_text("{")
    store = FileStore(state, recheck=0.0)
    store.put(Cooldown("after", time.time() + 60))
    assert not list(tmp_path.glob(".*.tmp"))
    data = json.loads(state.read_text())
    assert "after" in data["cooldowns"]


class _Broken(MemoryStore):
    def active(self, now: float | None = None) -> Any:
        raise RuntimeError("store exploded")

    def put(self, cooldown: Cooldown) -> None:
        raise RuntimeError("store exploded")


def test_a_store_error_never_fails_a_request(capsys: pytest.CaptureFixture[str]) -> None:
    with OpenAIFake(default=Reply(status=429)) as a, OpenAIFake() as b:
        client = Client(parse_config(_config(a.base_url, b.base_url, "memory")))
        client.router.policy._store = _Broken()
        client.router.policy._store_spec = "memory"
        assert client.chat("hi").provider == "b"
        # The cooldown of a still holds: it went to the in-memory store taking over.
        resp = client.chat("hi")
        assert resp.provider == "b" and resp.attempts[0].skipped
        assert len(a.requests) == 1
        client.close()
    err = capsys.readouterr().err
    assert err.count("cooldown store failed (store exploded)") == 1
