"""Choosing candidates: order by strategy, per-request selection, model fallback inside a
provider, capability filters (the model registry), agents serving prompts, and a hot path
that does not touch the state file when nothing is cooling."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import llmcore
import pytest
from llmcore import hookimpl
from llmcore.errors import (
    AllProvidersFailed,
    ConfigError,
    ModelNotFoundError,
    ProviderConnectionError,
)
from llmcore.router import parameter_count
from llmcore.testing import StaticProvider
from llmcore.types import AgentResult, AgentTask, ChatRequest, Message
from router_kit import Api, Events, RemoteProvider


class Busy(StaticProvider):
    type_name: ClassVar[str] = "busy"
    reported: ClassVar[dict[str, float | None]] = {}

    def load(self) -> float | None:
        return Busy.reported.get(self.name)


class EchoAgent(llmcore.Agent):
    """An agent that answers without a subprocess, recording the tasks it was given."""

    type_name = "echo-agent"
    program = "echo-agent"
    tasks: ClassVar[list[AgentTask]] = []

    def available(self) -> bool:
        return True

    def run(self, task: AgentTask, on_event: Any = None) -> AgentResult:
        EchoAgent.tasks.append(task)
        return AgentResult(
            agent=self.name, success=True, output=f"agent says: {task.prompt}", model=task.model
        )


class Plugin:
    @hookimpl
    def llmcore_register_providers(self) -> list[Any]:
        return [StaticProvider, RemoteProvider, Busy]

    @hookimpl
    def llmcore_register_agents(self) -> list[Any]:
        return [EchoAgent]


def _yaml(providers: str, routing: str = "state: memory", agents: str = "{}") -> str:
    return (
        f"providers:\n{providers}\nagents: {agents}\nmetrics: {{sinks: []}}\n"
        f"routing: {{{routing}}}\n"
    )


THREE = """\
  a: {plugin: static, reply: from-a, models: [m1]}
  b: {plugin: static, reply: from-b, models: [m1, m2]}
  c: {plugin: static, reply: from-c}
"""


def _names(client: Any, **kw: Any) -> list[tuple[str, str | None]]:
    req = ChatRequest(messages=[Message("user", "hi")], model=kw.pop("model", None))
    return [(c.name, c.model) for c in client.router.candidates(req, **kw)]


def test_priority_selection_and_fallback_flag(make_client: Any) -> None:
    client = make_client(_yaml(THREE), Plugin())
    assert _names(client) == [("a", "m1"), ("b", "m1"), ("b", "m2"), ("c", None)]
    assert _names(client, model="m2") == [("b", "m2"), ("c", "m2")]  # a does not list m2
    assert _names(client, provider="c", model="x") == [("c", "x")]
    assert _names(client, fallback=False) == [("a", "m1")]
    assert _names(client, model="b/m1") == [("b", "m1")]
    with pytest.raises(ConfigError, match="did you mean b"):
        _names(client, provider="bb")
    client.runtime.providers["a"].fail_with = ProviderConnectionError("down")
    with pytest.raises(AllProvidersFailed) as info:
        client.chat("hi", fallback=False)
    assert {a.provider for a in info.value.attempts} == {"a"}


def test_round_robin_rotates_the_first_provider(make_client: Any) -> None:
    client = make_client(_yaml(THREE, "state: memory, strategy: round_robin"), Plugin())
    firsts = [client.chat("hi").provider for _ in range(6)]
    assert firsts == ["a", "b", "c", "a", "b", "c"]


def test_cost_orders_by_price_local_first(make_client: Any) -> None:
    providers = """\
  dear: {plugin: remote, reply: dear, models: [gpt-4o]}
  cheap: {plugin: remote, reply: cheap, models: [gpt-4o-mini]}
  set: {plugin: remote, reply: set, models: [gpt-4o], cost: {input_per_million: 0.01, output_per_million: 0.02}}
  unknown: {plugin: remote, reply: unknown, models: [no-such-model-anywhere]}
  local: {plugin: static, reply: local}
"""  # noqa: E501
    client = make_client(_yaml(providers, "state: memory, strategy: cost"), Plugin())
    # local (0) < config override (0.03) < gpt-4o-mini (0.75) < gpt-4o (12.5) < unknown price
    assert [n for n, _ in _names(client)] == ["local", "set", "cheap", "dear", "unknown"]
    assert client.chat("hi").content == "local"


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_latency_prefers_the_fast_provider(is_async: bool, make_client: Any) -> None:
    client = make_client(
        _yaml(THREE, "state: memory, strategy: latency, latency_decay: 0.5"),
        Plugin(),
        async_=is_async,
    )
    api = Api(client, is_async)
    a = client.runtime.providers["a"]
    real = a.chat

    def slow(request: Any) -> Any:
        time.sleep(0.05)
        return real(request)

    a.chat = slow
    seen = [(await api.chat()).provider for _ in range(4)]
    # Unmeasured providers go first so they get measured; then the fast ones win.
    assert seen[0] == "a" and "a" not in seen[2:]
    assert client.router._latency["a"] > 0.04 > client.router._latency[seen[-1]]


def test_least_busy_uses_in_flight_and_reported_load(make_client: Any) -> None:
    providers = """\
  a: {plugin: busy, reply: from-a}
  b: {plugin: busy, reply: from-b}
"""
    client = make_client(_yaml(providers, "state: memory, strategy: least_busy"), Plugin())
    a = client.runtime.providers["a"]
    gate, entered = threading.Event(), threading.Event()
    real = a.chat

    def held(request: Any) -> Any:
        entered.set()
        gate.wait(5)
        return real(request)

    a.chat = held
    t = threading.Thread(target=client.chat, args=("first",))
    t.start()
    assert entered.wait(5)
    assert client.chat("second").provider == "b"  # a has one request in flight
    gate.set()
    t.join(5)
    Busy.reported.update({"a": 0.0, "b": 7.0})  # the server's own report wins
    assert client.chat("third").provider == "a"
    Busy.reported.update({"a": 9.0, "b": 1.0})
    assert client.chat("fourth").provider == "b"
    Busy.reported.clear()


def test_model_fallback_inside_a_provider(make_client: Any) -> None:
    providers = """\
  local: {plugin: static, reply: ok, models: [qwen2.5:7b, llama3.1:70b, gemma-3-270m],
          largest_first: true, fallback_models: [tiny]}
"""
    client = make_client(_yaml(providers), Plugin())
    assert [m for _, m in _names(client)] == ["llama3.1:70b", "qwen2.5:7b", "gemma-3-270m", "tiny"]
    p = client.runtime.providers["local"]
    real = p.chat

    def missing_big(request: Any) -> Any:
        if request.model != "qwen2.5:7b":
            raise ModelNotFoundError(
                f"model {request.model} not found", status=404, hint="ollama pull it"
            )
        return real(request)

    p.chat = missing_big
    resp = client.chat("hi")
    assert resp.model == "qwen2.5:7b"
    assert [(a.model, a.error_type) for a in resp.attempts] == [
        ("llama3.1:70b", "ModelNotFoundError"),
        ("qwen2.5:7b", None),
    ]
    # A model the caller names is never silently swapped for a fallback model (issue 13):
    # it is tried alone, and when it is missing the error says so.
    assert [m for _, m in _names(client, model="gemma-3-270m")] == ["gemma-3-270m"]
    with pytest.raises(AllProvidersFailed) as info:
        client.chat("hi", model="llama3.1:70b")
    assert [(a.model, a.error_type) for a in info.value.attempts] == [
        ("llama3.1:70b", "ModelNotFoundError")
    ]


def test_parameter_count_from_names() -> None:
    assert parameter_count("llama3.1:70b") == 70
    assert parameter_count("qwen2.5-0.5b-instruct") == 0.5
    assert parameter_count("gemma-3-270m") == pytest.approx(0.27)
    assert parameter_count("8.0B") == 8
    assert parameter_count("gpt-4o") is None
    assert parameter_count("mistral-7b-v0.3") == 7


def test_capability_filters_ask_the_registry(make_client: Any) -> None:
    providers = """\
  big: {plugin: remote, reply: big, models: [gpt-4o]}
  unknown: {plugin: remote, reply: unknown, models: [my-own-finetune]}
"""
    client = make_client(_yaml(providers), Plugin())
    assert [n for n, _ in _names(client)] == ["big", "unknown"]
    # An unknown model qualifies only when nothing is required.
    assert [n for n, _ in _names(client, require=["vision"])] == ["big"]
    assert _names(client, min_context=10**8) == []
    assert client.chat("hi", require=["vision"]).content == "big"
    with pytest.raises(AllProvidersFailed, match="none qualifies"):
        client.chat("hi", min_context=10**8)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_agents_serve_prompts_by_preference(is_async: bool, make_client: Any) -> None:
    EchoAgent.tasks = []
    agents = (
        "{helper: {plugin: echo-agent, serve_prompts: true, model: agent-model}, "
        "quiet: {plugin: echo-agent, serve_prompts: false}}"
    )
    one = "  a: {plugin: static, reply: from-a}\n"
    auto = make_client(_yaml(one, agents=agents), Plugin(), async_=is_async)
    assert _names(auto) == [("a", None), ("helper", "agent-model")]
    auto.runtime.providers["a"].fail_with = ProviderConnectionError("down")
    resp = await Api(auto, is_async).chat("what is 2+2?")
    assert resp.content == "agent says: what is 2+2?" and resp.provider == "helper"
    assert [a.provider for a in resp.attempts] == ["a", "a", "helper"]  # a retried once
    task = EchoAgent.tasks[-1]
    assert task.mode == "read_only" and task.model == "agent-model"
    chunks, _, err = await Api(auto, is_async).stream("stream me")
    assert err is None and "".join(c.content for c in chunks) == "agent says: stream me"
    # prefer: cli puts agents first and keeps API providers as the fallback (CLI→API).
    cli = make_client(_yaml(one, "state: memory, prefer: cli", agents=agents), Plugin())
    assert _names(cli) == [("helper", "agent-model"), ("a", None)]
    api_only = make_client(_yaml(one, "state: memory, prefer: api", agents=agents), Plugin())
    assert _names(api_only) == [("a", None)]


def test_events_and_attempts_match(make_client: Any) -> None:
    events = Events()
    client = make_client(_yaml(THREE), Plugin(), events)
    client.runtime.providers["a"].fail_with = ProviderConnectionError("reset by peer")
    resp = client.chat("hi")
    attempt_events = events.kinds("attempt")
    assert [(e.provider, e.outcome) for e in attempt_events] == [
        (a.provider, "ok" if a.ok else a.error_type) for a in resp.attempts
    ]
    assert len({e.request_id for e in events.events}) == 1
    assert [e.kind for e in events.events].count("retry") == 1


def test_config_errors_are_clear(make_client: Any) -> None:
    with pytest.raises(ConfigError, match="rate_limit_scope: must be model or provider"):
        make_client(_yaml(THREE, "cooldown: {rate_limit_scope: host}"), Plugin())
    # A wrong routing.state is found when the config is read, not at the first request.
    with pytest.raises(ConfigError, match="file, file:PATH, memory or redis") as info:
        make_client(_yaml(THREE, "state: 'zookeeper://x'"), Plugin())
    assert info.value.path == "routing.state"


def test_hot_path_does_not_read_the_state_file(
    make_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llmcore.state as state

    path = tmp_path / "state.json"
    client = make_client(_yaml(THREE, f"state: 'file:{path}'"), Plugin())
    client.chat("warm up")
    stats: list[str] = []
    real_stat = state.os.stat

    def counting(p: Any, *a: Any, **kw: Any) -> Any:
        if str(p) == str(path):
            stats.append(str(p))
        return real_stat(p, *a, **kw)

    monkeypatch.setattr(state.os, "stat", counting)
    t0 = time.monotonic()
    for _ in range(300):
        client.chat("hi")
    elapsed = time.monotonic() - t0
    # At most one stat per recheck interval (0.25 s), however many requests.
    assert len(stats) <= elapsed / 0.25 + 1
    assert not path.exists()  # nothing cooled: nothing written


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_a_stream_left_early_releases_the_provider(is_async: bool, make_client: Any) -> None:
    client = make_client(
        _yaml(THREE, "state: memory, strategy: least_busy"), Plugin(), async_=is_async
    )
    a = client.runtime.providers["a"]
    closed: list[bool] = []

    def words(request: Any) -> Any:
        try:
            for w in ["one ", "two ", "three"]:
                yield llmcore.StreamChunk(content=w)
        finally:
            closed.append(True)

    async def awords(request: Any) -> Any:
        try:
            for w in ["one ", "two ", "three"]:
                yield llmcore.StreamChunk(content=w)
        finally:
            closed.append(True)

    a.stream = words
    a.astream = awords
    it = client.stream("hi")
    if is_async:
        first = await it.__anext__()
        await it.aclose()
    else:
        first = next(it)
        it.close()
    assert first.content == "one "
    assert closed == [True]  # the provider's stream was closed, not left hanging
    assert client.router._in_flight["a"] == 0
