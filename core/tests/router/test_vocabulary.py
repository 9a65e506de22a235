"""The seeds' routing vocabulary, in both directions: strategies api_first / cli_first /
cost_based, agents' capabilities and free_tier, prefer: auto by the task, agent chains for
run_agent, and no silent loss when a request would have to change mode."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, ClassVar

import attrs
import llmcore
import pytest
from llmcore import hookimpl
from llmcore.errors import (
    AgentAuthError,
    AgentConnectionError,
    AgentNotFoundError,
    AgentRateLimitError,
    AllProvidersFailed,
    ConfigError,
    ProviderConnectionError,
)
from llmcore.testing import StaticProvider
from llmcore.types import AgentResult, AgentTask, ChatRequest, Message
from router_kit import RemoteProvider

_ERRORS = {
    "auth": AgentAuthError,
    "rate": AgentRateLimitError,
    "down": AgentConnectionError,
    "missing": AgentNotFoundError,
}


class ChainAgent(llmcore.Agent):
    """Answers without a subprocess; ``fail`` makes it raise that kind of failure."""

    type_name = "chain-agent"
    program = "chain-agent"
    tasks: ClassVar[list[tuple[str, AgentTask]]] = []
    lock = threading.Lock()

    @attrs.define
    class Options:
        fail: str = ""
        changed: bool = False

    def available(self) -> bool:
        return True

    def run(self, task: AgentTask, on_event: Any = None, cancel: Any = None) -> AgentResult:
        with ChainAgent.lock:
            ChainAgent.tasks.append((self.name, task))
        if self.options.fail:
            exc = _ERRORS[self.options.fail](f"{self.name}: {self.options.fail}", agent=self.name)
            if self.options.changed:
                exc.result = AgentResult(
                    agent=self.name,
                    success=False,  # type: ignore[attr-defined]
                    files_modified=["app.py"],
                )
            raise exc
        return AgentResult(
            agent=self.name, success=True, output=f"{self.name} did it", model=task.model
        )


class Plugin:
    @hookimpl
    def llmcore_register_providers(self) -> list[Any]:
        return [StaticProvider, RemoteProvider]

    @hookimpl
    def llmcore_register_agents(self) -> list[Any]:
        return [ChainAgent]


@pytest.fixture(autouse=True)
def _fresh() -> None:
    ChainAgent.tasks = []


def _yaml(
    routing: str, agents: str, providers: str = "  api: {plugin: static, reply: from-api}\n"
) -> str:
    return (
        f"providers:\n{providers}agents: {agents}\nmetrics: {{sinks: []}}\n"
        f"routing: {{state: memory, {routing}}}\n"
    )


def _plan(client: Any, request: ChatRequest | None = None, **kw: Any) -> list[tuple[str, str]]:
    req = request or ChatRequest(messages=[Message("user", "hi")])
    return [(c.name, c.kind) for c in client.router.candidates(req, **kw)]


AGENT = "{coder: {plugin: chain-agent}}"


def test_api_first_puts_agents_in_the_chain_and_falls_back_api_to_cli(make_client: Any) -> None:
    client = make_client(_yaml("strategy: api_first", AGENT), Plugin())
    assert _plan(client) == [("api", "api"), ("coder", "cli")]
    client.runtime.providers["api"].fail_with = ProviderConnectionError("down")
    resp = client.chat("what is 2+2?")
    assert resp.provider == "coder" and resp.content == "coder did it"
    assert [a.provider for a in resp.attempts][-1] == "coder"


def test_cli_first_falls_back_cli_to_api(make_client: Any) -> None:
    client = make_client(
        _yaml("strategy: cli_first", "{coder: {plugin: chain-agent, fail: down}}"), Plugin()
    )
    assert _plan(client) == [("coder", "cli"), ("api", "api")]
    resp = client.chat("what is 2+2?")
    assert resp.provider == "api" and resp.content == "from-api"
    assert [(a.provider, a.ok) for a in resp.attempts] == [("coder", False), ("api", True)]


def test_cost_based_is_cost_and_a_free_tier_agent_beats_a_priced_provider(make_client: Any) -> None:
    providers = (
        "  paid: {plugin: remote, reply: paid, models: [m1], "
        "cost: {input_per_million: 5, output_per_million: 15}}\n"
    )
    agents = (
        "{free: {plugin: chain-agent, free_tier: true, serve_prompts: true}, "
        "dear: {plugin: chain-agent, serve_prompts: true}}"
    )
    client = make_client(_yaml("strategy: cost_based, prefer: api", agents, providers), Plugin())
    # prefer: api keeps agents out ...
    assert _plan(client) == [("paid", "api")]
    client = make_client(_yaml("strategy: cost_based, prefer: cli", agents, providers), Plugin())
    # ... with both modes: free agent (0) < paid provider (20) < unpriced agent (unknown).
    assert _plan(client) == [("free", "cli"), ("paid", "api"), ("dear", "cli")]
    assert client.chat("hi").provider == "free"


def test_agent_capabilities_serve_require(make_client: Any) -> None:
    agents = (
        "{coder: {plugin: chain-agent, capabilities: [code, tools]}, "
        "writer: {plugin: chain-agent, capabilities: [chat]}}"
    )
    client = make_client(_yaml("strategy: cli_first", agents), Plugin())
    assert _plan(client, require=["code"]) == [("coder", "cli")]
    assert client.chat("refactor this", require=["code"]).provider == "coder"


def test_prefer_auto_chooses_by_the_task(make_client: Any, tmp_path: Path) -> None:
    agents = "{coder: {plugin: chain-agent, serve_prompts: true, mode: auto_edit}}"
    client = make_client(_yaml("prefer: auto", agents), Plugin())
    # A plain question: API providers first, the agent after (API→CLI).
    assert _plan(client) == [("api", "api"), ("coder", "cli")]
    assert client.chat("what is 2+2?").provider == "api"
    # A request that names a working directory or asks for edits: agents first (CLI→API).
    work = ChatRequest(messages=[Message("user", "fix it")], extra={"cwd": str(tmp_path)})
    assert _plan(client, work) == [("coder", "cli"), ("api", "api")]
    resp = client.chat("fix the failing test", cwd=str(tmp_path), edit=True)
    assert resp.provider == "coder"
    _, task = ChainAgent.tasks[-1]
    assert task.cwd == str(tmp_path) and task.mode == "auto_edit"
    # ... and when the agent cannot, the API provider answers, without the routing hints.
    client.runtime.agents["coder"].options.fail = "down"
    resp = client.chat("fix the failing test", cwd=str(tmp_path))
    assert resp.provider == "api"
    sent = client.runtime.providers["api"].requests[-1]
    assert "cwd" not in sent.extra and "edit" not in sent.extra


@pytest.mark.parametrize(
    "kwargs,lost",
    [
        (
            {"messages": [{"role": "user", "content": "what is this?", "images": ["aGk="]}]},
            "images",
        ),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
        ({"response_format": {"type": "json_object"}}, "a response format"),
        ({"temperature": 0.1}, "sampling options (temperature)"),
        ({"system": "be brief"}, "a chat of several messages"),
    ],
)
def test_a_request_an_agent_cannot_carry_is_never_given_to_one(
    make_client: Any, kwargs: dict[str, Any], lost: str
) -> None:
    client = make_client(_yaml("strategy: api_first", AGENT), Plugin())
    client.runtime.providers["api"].fail_with = ProviderConnectionError("down")
    messages = kwargs.pop("messages", "hi")
    with pytest.raises(AllProvidersFailed) as info:
        client.chat(messages, **kwargs)
    skipped = info.value.attempts[-1]
    assert skipped.provider == "coder" and skipped.skipped
    assert skipped.error_type == "CannotCarry" and lost in skipped.message
    assert ChainAgent.tasks == []  # never called, never reported as a success
    assert "skipped" in str(info.value) and "cooling" not in str(info.value)


def _chain(make_client: Any, agents: str) -> Any:
    return make_client(_yaml("prefer: api", agents), Plugin())


@pytest.mark.parametrize("why", ["auth", "rate", "down", "missing"])
def test_run_agent_chain_goes_on_when_an_agent_cannot_work(
    make_client: Any, tmp_path: Path, why: str
) -> None:
    client = _chain(
        make_client,
        f"{{first: {{plugin: chain-agent, fail: {why}}}, second: {{plugin: chain-agent}}}}",
    )
    result = client.run_agent(["first", "second"], "add a test", cwd=tmp_path)
    assert result.success and result.output == "second did it"
    assert [n for n, _ in ChainAgent.tasks] == ["first", "second"]


def test_run_agent_chain_from_config_fallback(make_client: Any, tmp_path: Path) -> None:
    client = _chain(
        make_client,
        "{first: {plugin: chain-agent, fail: auth, "
        "fallback: [second]}, second: {plugin: chain-agent}}",
    )
    assert client.run_agent("first", "add a test", cwd=tmp_path).output == "second did it"


def test_run_agent_chain_never_goes_on_after_files_changed_in_place(
    make_client: Any, tmp_path: Path
) -> None:
    client = _chain(
        make_client,
        "{first: {plugin: chain-agent, fail: rate, changed: true}, second: {plugin: chain-agent}}",
    )
    with pytest.raises(AgentRateLimitError, match="already changed 1 file"):
        client.run_agent(["first", "second"], "add a test", cwd=tmp_path)
    assert [n for n, _ in ChainAgent.tasks] == ["first"]
    # In its own worktree the user's tree is untouched: the chain may go on.
    client = _chain(
        make_client,
        "{first: {plugin: chain-agent, fail: rate, changed: true, "
        "isolation: worktree}, second: {plugin: chain-agent}}",
    )
    assert client.run_agent(["first", "second"], "x", cwd=tmp_path).output == "second did it"


def test_run_agent_chain_reports_every_agent_tried(make_client: Any, tmp_path: Path) -> None:
    client = _chain(
        make_client,
        "{first: {plugin: chain-agent, fail: auth}, second: {plugin: chain-agent, fail: down}}",
    )
    with pytest.raises(
        AgentConnectionError,
        match=r"tried in order: first: AgentAuthError, "
        r"second: AgentConnectionError",
    ):
        client.run_agent(["first", "second"], "x", cwd=tmp_path)


async def test_async_run_agent_chain(make_client: Any, tmp_path: Path) -> None:
    client = make_client(
        _yaml(
            "prefer: api",
            "{first: {plugin: chain-agent, fail: auth}, second: {plugin: chain-agent}}",
        ),
        Plugin(),
        async_=True,
    )
    result = await client.run_agent(["first", "second"], "x", cwd=tmp_path)
    assert result.output == "second did it"


def test_a_fallback_naming_an_unknown_agent_is_a_config_error(make_client: Any) -> None:
    with pytest.raises(
        ConfigError,
        match=r"agents\.first\.fallback\.0: no agent named "
        r"'secnd', did you mean second",
    ):
        make_client(
            _yaml(
                "prefer: api",
                "{first: {plugin: chain-agent, fallback: [secnd]}, second: {plugin: chain-agent}}",
            ),
            Plugin(),
        )
