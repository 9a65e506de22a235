"""The cache plugin, installed as users install it (entry point), against the fakes: the second
identical request is answered without a network call (the fake records one request), for chat
and stream, sync and async, SQLite and a real Redis; errors and sampled requests are never
cached; hits are metrics events that ``usage`` shows; ``llmcore cache stats|clear``."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from llmcore import AllProvidersFailed, AsyncClient, Client, ConfigError
from llmcore.config import parse_config
from llmcore.sinks.sqlite import read_events
from llmcore.testing.fakes import OpenAIFake, Reply
from redis_server import RedisServer


def config(
    fake: OpenAIFake,
    tmp_path: Path,
    cache: str = "{}",
    state: str = "memory",
    second: OpenAIFake | None = None,
) -> str:
    more = (
        (f"  other:\n    plugin: openai\n    base_url: {second.base_url}\n    models: [m]\n")
        if second
        else ""
    )
    return f"""
providers:
  o:
    plugin: openai
    base_url: {fake.base_url}
    models: [m]
{more}cache: {cache}
routing: {{state: '{state}'}}
metrics: {{sqlite: {{path: {tmp_path / "metrics.db"}, flush_interval: 0.05}}}}
"""


def cache_path(tmp_path: Path) -> str:
    return f"{{path: {tmp_path / 'cache.db'}}}"


def test_the_plugin_is_installed_and_declares_its_section() -> None:
    from llmcore.runtime import Runtime

    rt = Runtime(parse_config("cache: {ttl_seconds: 60}"))
    record = next(r for r in rt.pm.records if r.name == "llmcore-plugin-cache")
    assert record.status == "loaded", record.error
    assert "llmcore_generate" in record.hooks and "llmcore_config_sections" in record.hooks


def test_second_identical_chat_makes_no_call(tmp_path: Path) -> None:
    with OpenAIFake() as fake:
        with Client(parse_config(config(fake, tmp_path, cache_path(tmp_path)))) as c:
            fake.push(Reply(text="the answer", usage=(9, 4)))
            first = c.chat("what is 2+2?", max_tokens=5)
            second = c.chat("what is 2+2?", max_tokens=5)
            fake.push(Reply(text="other"))
            third = c.chat("what is 2+2?", max_tokens=6)  # other options: another key
        assert len(fake.requests) == 2
        assert first.content == second.content == "the answer"
        assert first.usage.input_tokens == 9 and second.usage.input_tokens == 0
        assert second.cost_usd == 0.0 and third.content == "other"
        # with a new client (and process-wide state dropped) it is still there: on disk
        with Client(parse_config(config(fake, tmp_path, cache_path(tmp_path)))) as c:
            assert c.chat("what is 2+2?", max_tokens=5).content == "the answer"
        assert len(fake.requests) == 2
    assert stat.S_IMODE((tmp_path / "cache.db").stat().st_mode) == 0o600


def test_streams_are_replayed_as_streams(tmp_path: Path) -> None:
    with (
        OpenAIFake() as fake,
        Client(parse_config(config(fake, tmp_path, cache_path(tmp_path)))) as c,
    ):
        fake.push(Reply(chunks=["one ", "two ", "three"], text="one two three"))
        first = [ch.content for ch in c.stream("count") if ch.content]
        again = [ch.content for ch in c.stream("count") if ch.content]
        whole = c.chat("count")  # the stored stream answers a chat too
    assert first == again == ["one ", "two ", "three"]
    assert whole.content == "one two three"
    assert len(fake.requests) == 1


def test_async_chat_and_stream(tmp_path: Path) -> None:
    async def run() -> tuple[list[str], list[str], str, str]:
        with OpenAIFake() as fake:
            async with AsyncClient(parse_config(config(fake, tmp_path, cache_path(tmp_path)))) as c:
                fake.push(Reply(text="async answer"), Reply(chunks=["a", "b"], text="ab"))
                one = (await c.chat("q")).content
                two = (await c.chat("q")).content
                s1 = [ch.content async for ch in c.stream("s") if ch.content]
                s2 = [ch.content async for ch in c.stream("s") if ch.content]
                assert len(fake.requests) == 2
                return s1, s2, one, two

    s1, s2, one, two = asyncio.run(run())
    assert one == two == "async answer" and s1 == s2 == ["a", "b"]


def test_errors_and_broken_streams_are_never_cached(tmp_path: Path) -> None:
    with (
        OpenAIFake() as fake,
        Client(parse_config(config(fake, tmp_path, cache_path(tmp_path)))) as c,
    ):
        fake.push(Reply(status=400, error="bad request"))
        with pytest.raises(AllProvidersFailed):
            c.chat("q")
        fake.push(Reply(text="good"))
        assert c.chat("q").content == "good"
        fake.push(
            Reply(chunks=["x", "y", "z"], text="xyz", cut_after=2),
            Reply(chunks=["x", "y", "z"], text="xyz"),
        )
        with pytest.raises(Exception):  # noqa: B017 - StreamInterrupted or a failover error
            list(c.stream("s"))
        assert "".join(ch.content for ch in c.stream("s")) == "xyz"
    assert len(fake.requests) == 4


def test_sampled_requests_are_not_cached_unless_asked(tmp_path: Path) -> None:
    with OpenAIFake() as fake:
        with Client(parse_config(config(fake, tmp_path, cache_path(tmp_path)))) as c:
            fake.push(Reply(text="a"), Reply(text="b"))
            assert c.chat("q", temperature=0.7).content == "a"
            assert c.chat("q", temperature=0.7).content == "b"
        assert len(fake.requests) == 2
        text = config(fake, tmp_path, f"{{path: {tmp_path / 'c2.db'}, cache_sampled: true}}")
        with Client(parse_config(text)) as c:
            fake.push(Reply(text="c"))
            assert c.chat("q", temperature=0.7).content == "c"
            assert c.chat("q", temperature=0.7).content == "c"
        assert len(fake.requests) == 3


def test_provider_agnostic_unless_configured(tmp_path: Path) -> None:
    with OpenAIFake() as a, OpenAIFake() as b:
        text = config(a, tmp_path, cache_path(tmp_path), second=b)
        with Client(parse_config(text)) as c:
            a.push(Reply(text="from a"))
            assert c.chat("q").content == "from a"
            assert c.chat("q", provider="other").content == "from a"
        assert b.requests == []
        text = config(a, tmp_path, f"{{path: {tmp_path / 'pp.db'}, per_provider: true}}", second=b)
        with Client(parse_config(text)) as c:
            a.push(Reply(text="from a"))
            b.push(Reply(text="from b"))
            assert c.chat("q").content == "from a"
            assert c.chat("q", provider="other").content == "from b"


def test_hits_are_metrics_events_shown_in_usage(tmp_path: Path) -> None:
    with OpenAIFake() as fake:
        cfg = tmp_path / "llmcore.yaml"
        cfg.write_text(config(fake, tmp_path, cache_path(tmp_path)))
        with Client(parse_config(cfg.read_text())) as c:
            fake.push(Reply(text="x", usage=(10, 2)))
            for _ in range(3):
                c.chat("q")
        hits = [e for e in read_events(tmp_path / "metrics.db") if e["kind"] == "cache_hit"]
        assert len(hits) == 2 and hits[0]["input_tokens"] == 10
        assert hits[0]["provider"] == "o"
        env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
        run = [sys.executable, "-m", "llmcore", "--config", str(cfg)]
        out = subprocess.run(
            [*run, "usage", "--json"], capture_output=True, text=True, timeout=120, env=env
        )
        (row,) = json.loads(out.stdout)["rows"]
        assert row["requests"] == 3 and row["cache_hits"] == 2
        table = subprocess.run(
            [*run, "usage"], capture_output=True, text=True, timeout=120, env=env
        )
        assert "3 (2 cached)" in table.stdout
        stats = json.loads(
            subprocess.run(
                [*run, "cache", "stats", "--json"],
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
            ).stdout
        )
        assert stats["ok"] and stats["backend"] == "sqlite"
        assert stats["entries"] == 1 and stats["hits"] == 2
        cleared = json.loads(
            subprocess.run(
                [*run, "cache", "clear", "--json"],
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
            ).stdout
        )
        assert cleared == {"ok": True, "deleted": 1}
        with Client(parse_config(cfg.read_text())) as c:
            fake.push(Reply(text="after clear"))
            assert c.chat("q").content == "after clear"


def test_its_section_is_checked_with_suggestions(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("cache:\n  ttl_secs: 5\n")
    assert info.value.path == "cache.ttl_secs" and "did you mean ttl_seconds?" in str(info.value)
    cfg = tmp_path / "llmcore.yaml"
    cfg.write_text("cache: {backend: sqlit}\n")
    out = subprocess.run(
        [sys.executable, "-m", "llmcore", "--config", str(cfg), "cache", "stats", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "did you mean sqlite?" in json.loads(out.stdout)["message"]


@pytest.mark.redis
def test_redis_when_routing_state_is_redis(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    with RedisServer(tmp_path / "redis") as server, OpenAIFake() as fake:
        text = config(fake, tmp_path, "{}", state=server.url)
        with Client(parse_config(text)) as c:
            fake.push(Reply(text="kept in redis"))
            assert c.chat("q").content == "kept in redis"
        with Client(parse_config(text)) as c:  # another client: shared through Redis
            assert c.chat("q").content == "kept in redis"
            assert "".join(ch.content for ch in c.stream("q")) == "kept in redis"
        assert len(fake.requests) == 1
        from llmcore_cache.cache import cache_for

        _, store = cache_for(parse_config(text))
        assert store.kind == "redis"
        assert store.stats()["entries"] == 1 and store.stats()["hits"] == 2
        assert store.clear() == 1 and store.stats()["entries"] == 0
    assert not (tmp_path / "cache.db").exists()


def test_off_without_a_cache_section(tmp_path: Path) -> None:
    with OpenAIFake() as fake:
        text = config(fake, tmp_path).replace("cache: {}\n", "")
        assert "cache:" not in text
        with Client(parse_config(text)) as c:
            fake.push(Reply(text="a"), Reply(text="b"))
            assert [c.chat("q").content, c.chat("q").content] == ["a", "b"]
        cfg = tmp_path / "llmcore.yaml"
        cfg.write_text(text)
        out = subprocess.run(
            [sys.executable, "-m", "llmcore", "--config", str(cfg), "cache", "stats", "--json"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 1 and "cache: {}" in json.loads(out.stdout)["hint"]
        text = config(fake, tmp_path, "{enabled: false}")
        with Client(parse_config(text)) as c:
            fake.push(Reply(text="c"), Reply(text="d"))
            assert [c.chat("q").content, c.chat("q").content] == ["c", "d"]


@pytest.mark.parametrize("section", ["", "cache: {enabled: false}\n"])
def test_an_unused_cache_is_never_called(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, section: str
) -> None:
    """Off (no section, or enabled: false): the plugin's generate hooks are left out of the
    call, not called to return at once, so no pluggy wrapper runs around the provider."""
    import llmcore_cache

    asked: list[object] = []
    real = llmcore_cache.cache_for
    monkeypatch.setattr(llmcore_cache, "cache_for", lambda cfg: asked.append(cfg) or real(cfg))
    with OpenAIFake() as fake:
        text = config(fake, tmp_path).replace("cache: {}\n", section)
        with Client(parse_config(text)) as c:
            fake.push(Reply(text="a"))
            fake.push(Reply(text="b"))
            assert c.chat("hi").content == "a"
            assert c.chat("hi").content == "b"  # not cached, and the cache never asked
            assert c.runtime.hooks.plugins_off(c.runtime.config) == {"llmcore-plugin-cache"}
    assert asked == []


def test_a_cache_section_turns_the_hooks_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llmcore_cache

    asked: list[object] = []
    real = llmcore_cache.cache_for
    monkeypatch.setattr(llmcore_cache, "cache_for", lambda cfg: asked.append(cfg) or real(cfg))
    with OpenAIFake() as fake:
        with Client(parse_config(config(fake, tmp_path, cache_path(tmp_path)))) as c:
            fake.push(Reply(text="once"))
            assert c.chat("hi").content == c.chat("hi").content == "once"
            assert c.runtime.hooks.plugins_off(c.runtime.config) == set()
        assert len(fake.requests) == 1
    assert asked  # answer and store consulted the cache
