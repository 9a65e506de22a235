"""The public API with an in-test provider plugin, and every hook doing its job."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import llmcore
import pytest
from llmcore import hookimpl
from llmcore.errors import (
    AgentNotFoundError,
    AllProvidersFailed,
    ConfigError,
    ProviderConnectionError,
    StreamInterrupted,
)
from llmcore.metrics import MetricsEvent, MetricsSink
from llmcore.testing import StaticProvider
from llmcore.types import ChatResponse, StreamChunk

CHAIN = """
providers:
  first: {plugin: static, reply: "one two three"}
  second: {plugin: static, reply: "from second"}
agents: {}
metrics: {sinks: [memory]}
"""


class MemorySink(MetricsSink):
    type_name = "memory"
    events: list[MetricsEvent] = []

    def emit(self, event: MetricsEvent) -> None:
        MemorySink.events.append(event)


class StaticPlugin:
    @hookimpl
    def llmcore_register_providers(self) -> list[Any]:
        return [StaticProvider]

    @hookimpl
    def llmcore_register_metrics_sinks(self) -> list[Any]:
        return [MemorySink]


@pytest.fixture(autouse=True)
def _clear() -> None:
    MemorySink.events = []


def test_chat_stream_generate_embed_models(make_client: Any) -> None:
    client = make_client(CHAIN, StaticPlugin())
    resp = client.chat("hi", model="m1")
    assert isinstance(resp, ChatResponse)
    assert resp.content == "one two three" and resp.provider == "first"
    assert resp.usage.output_tokens == 3
    assert [a.ok for a in resp.attempts] == [True]
    assert "".join(c.content for c in client.stream("hi")) == "one two three"
    assert client.generate("once upon").content == "one two three"
    assert client.embed(["ab", "abc"]).vectors == [[2.0, 1.0], [3.0, 1.0]]
    assert [m.name for m in client.models()] == []
    assert resp.to_dict()["usage"]["total_tokens"] == resp.usage.total_tokens
    kinds = {e.kind for e in MemorySink.events}
    assert {"request", "attempt"} <= kinds


def test_failover_and_all_failed(make_client: Any) -> None:
    # One call per provider (no retries), so each request is one attempt per provider.
    no_retry = CHAIN.replace('three"}', 'three", retry: {max_attempts: 1}}').replace(
        'second"}', 'second", retry: {max_attempts: 1}}'
    )
    client = make_client(no_retry, StaticPlugin())
    first = client.runtime.providers["first"]
    first.fail_with = ProviderConnectionError("refused", provider="first", hint="start it")
    resp = client.chat("hi")
    assert resp.provider == "second"
    assert [(a.provider, a.ok) for a in resp.attempts] == [("first", False), ("second", True)]
    client.runtime.providers["second"].fail_with = ProviderConnectionError("down too")
    with pytest.raises(AllProvidersFailed) as info:
        client.chat("hi")
    assert [a.provider for a in info.value.attempts] == ["first", "second"]
    assert "start it" in str(info.value)
    with pytest.raises(AllProvidersFailed):
        client.chat("hi", fallback=False)
    assert len(first.requests) == 3


def test_stream_broken_after_first_chunk_is_not_restarted(make_client: Any) -> None:
    client = make_client(CHAIN, StaticPlugin())
    first = client.runtime.providers["first"]

    def broken(request: Any) -> Any:
        yield StreamChunk(content="one ")
        raise ProviderConnectionError("reset", provider="first")

    first.stream = broken
    got: list[str] = []
    with pytest.raises(StreamInterrupted) as info:
        for chunk in client.stream("hi"):
            got.append(chunk.content)
    assert got == ["one "] and info.value.partial == "one "
    assert client.runtime.providers["second"].requests == []


def test_provider_and_model_selection(make_client: Any) -> None:
    client = make_client(CHAIN, StaticPlugin())
    assert client.chat("hi", provider="second").provider == "second"
    assert client.chat("hi", model="second/some-model").model == "some-model"
    with pytest.raises(ConfigError, match="did you mean second"):
        client.chat("hi", provider="secnd")


async def test_async_client(make_client: Any) -> None:
    client = make_client(CHAIN, StaticPlugin(), async_=True)
    resp = await client.chat([{"role": "user", "content": "hi"}], temperature=0.2, top_k=3)
    assert resp.content == "one two three"
    req = client.runtime.providers["first"].requests[-1]
    assert req.temperature == 0.2 and req.extra == {"top_k": 3}
    assert "".join([c.content async for c in client.stream("hi")]) == "one two three"
    assert (await client.embed("abcd")).vectors == [[4.0, 1.0]]


# -- generation hook: cache, rewrite, guard, trace -------------------------------------
class Cache:
    def __init__(self) -> None:
        self.store: dict[str, ChatResponse] = {}

    @hookimpl(tryfirst=True)
    def llmcore_generate(self, call: llmcore.GenerationCall) -> Any:
        if call.operation == "chat":
            key = call.request.messages[-1].content
            return self.store.get(key)
        return None


class CacheWriter:
    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    @hookimpl(wrapper=True)
    def llmcore_generate(self, call: llmcore.GenerationCall) -> Any:
        result = yield
        if call.operation == "chat":
            self.cache.store[call.request.messages[-1].content] = result
        return result


class Rewriter:
    @hookimpl
    def llmcore_generate(self, call: llmcore.GenerationCall) -> None:
        call.request.temperature = 0.0


class Guard:
    @hookimpl
    def llmcore_generate(self, call: llmcore.GenerationCall) -> None:
        if "forbidden" in call.request.messages[-1].content:
            raise llmcore.LLMCoreError("refused by guard")


def test_generation_hook_cache_rewrite_guard_trace(make_client: Any) -> None:
    cache = Cache()
    client = make_client(CHAIN, StaticPlugin(), cache, CacheWriter(cache), Rewriter(), Guard())
    first = client.runtime.providers["first"]
    a = client.chat("question")
    b = client.chat("question")
    assert a.content == b.content and len(first.requests) == 1  # the second was a cache hit
    assert first.requests[0].temperature == 0.0  # rewritten
    with pytest.raises(llmcore.LLMCoreError, match="refused by guard"):
        client.chat("forbidden words")
    assert len(first.requests) == 1


def test_agent_hook_and_run_agent(make_client: Any, tmp_path: Path) -> None:
    script = tmp_path / "fake-agent"
    script.write_text(
        f"#!{sys.executable}\nimport json,sys\n"
        "print(json.dumps({'type':'result','text':sys.argv[-1]}))\n"
    )
    script.chmod(0o755)

    class EchoAgent(llmcore.Agent):
        type_name = "echo"
        program = "fake-agent"

        def build(self, task: llmcore.AgentTask) -> llmcore.Invocation:
            return llmcore.Invocation(argv=[str(script), "--", task.prompt], cwd=task.cwd)

    seen: list[Any] = []

    class AgentPlugin:
        @hookimpl
        def llmcore_register_agents(self) -> list[Any]:
            return [EchoAgent]

        @hookimpl(wrapper=True)
        def llmcore_run_agent(self, call: llmcore.AgentCall) -> Any:
            call.task.prompt = call.task.prompt.upper()
            result = yield
            seen.append(result)
            return result

    client = make_client(
        CHAIN.replace("agents: {}", "agents:\n  echo: {command: " + str(script) + "}"),
        StaticPlugin(),
        AgentPlugin(),
    )
    events: list[dict[str, Any]] = []
    result = client.run_agent("echo", "-rf fix it", cwd=tmp_path, on_event=events.append)
    assert result.success and result.exit_code == 0
    assert events == [{"type": "result", "text": "-RF FIX IT"}]
    assert seen == [result]
    assert any(e.kind == "agent_run" and e.agent == "echo" for e in MemorySink.events)
    with pytest.raises(ConfigError, match="no agent named"):
        client.run_agent("nope", "x", cwd=tmp_path)
    client.runtime.agents["echo"].config.command = str(tmp_path / "missing")
    with pytest.raises(AgentNotFoundError):
        client.run_agent("echo", "x", cwd=tmp_path)


def test_metrics_event_hook_and_failing_sink(
    make_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    got: list[MetricsEvent] = []

    class Listener:
        @hookimpl
        def llmcore_metrics_event(self, event: MetricsEvent) -> None:
            got.append(event)

    class BrokenSink(MetricsSink):
        type_name = "broken"

        def emit(self, event: MetricsEvent) -> None:
            raise OSError("disk full")

    class BrokenSinkPlugin:
        @hookimpl
        def llmcore_register_metrics_sinks(self) -> list[Any]:
            return [BrokenSink]

    config = CHAIN.replace("sinks: [memory]", "sinks: [broken, memory]")
    client = make_client(config, BrokenSinkPlugin(), StaticPlugin(), Listener())
    client.chat("a")
    client.chat("b")
    assert [e.kind for e in got].count("request") == 2
    assert capsys.readouterr().err.count("disk full") == 1  # reported once, never raised
    assert [e.kind for e in MemorySink.events].count("request") == 2  # later sinks still fed


def test_register_commands_hook(tmp_path: Path) -> None:
    import click
    from click.testing import CliRunner
    from llmcore.plugins import PluginManager

    class Commands:
        @hookimpl
        def llmcore_register_commands(self, cli: click.Group) -> None:
            @cli.command("hello-test")
            def hello() -> None:
                click.echo("hello from plugin")

    pm = PluginManager(load_entry_points=False)
    pm.register(Commands())
    group = click.Group()
    pm.hooks.register_commands(group)
    assert CliRunner().invoke(group, ["hello-test"]).output == "hello from plugin\n"
