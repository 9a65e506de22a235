"""The typed hook façade (``runtime.hooks``), ``Client(runtime=...)`` and closing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import llmcore
import pytest
from llmcore import hookimpl
from llmcore.config import Config, ProviderConfig
from llmcore.hooks import GenerationCall, Hooks
from llmcore.plugins import PluginManager
from llmcore.runtime import Runtime
from llmcore.testing import StaticProvider
from llmcore.types import ChatResponse

ROOT = Path(__file__).resolve().parents[2]


class Closing(StaticProvider):
    type_name = "closing"
    closed: list[str] = []

    def close(self) -> None:
        Closing.closed.append(self.name)


class Plugin:
    @hookimpl
    def llmcore_register_providers(self) -> list[Any]:
        return [Closing]

    @hookimpl
    def llmcore_generate(self, call: GenerationCall) -> Any:
        if call.request.extra.get("cached"):
            return ChatResponse(content="from the cache", provider=call.provider.name)
        return None


def runtime() -> Runtime:
    pm = PluginManager(load_entry_points=False)
    pm.register(Plugin(), name="test-plugin")
    cfg = Config(
        providers={
            "a": ProviderConfig(name="a", plugin="closing"),
            "b": ProviderConfig(name="b", plugin="closing"),
        },
        agents={},
    )
    return Runtime(cfg, pm)


def test_no_untyped_hook_calls_outside_the_facade() -> None:
    allowed = {
        ROOT / "core/src/llmcore/hooks.py",
        ROOT / "core/src/llmcore/plugins.py",
        ROOT / "core/src/llmcore/plugin_loading.py",  # config sections, before any Runtime
    }
    pattern = re.compile(r"\.hook\.llmcore_|pm\.hook\.")
    offenders = [
        str(p.relative_to(ROOT))
        for base in [ROOT / "core/src", *ROOT.glob("plugins/*/src")]
        for p in base.rglob("*.py")
        if p not in allowed and pattern.search(p.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_generation_goes_through_the_facade() -> None:
    rt = runtime()
    assert isinstance(rt.hooks, Hooks) and rt.hooks is rt.pm.hooks
    with llmcore.Client(runtime=rt) as client:
        assert client.chat("hi", cached=True).content == "from the cache"
        assert client.chat("hi").content == "hello from static"


def test_discovery_through_the_facade_names_the_plugin() -> None:
    offered = runtime().hooks.register_providers()
    assert ("test-plugin", Closing) in offered


def test_client_uses_the_runtime_it_is_given_and_closes_what_it_built() -> None:
    Closing.closed = []
    rt = runtime()
    client = llmcore.Client(runtime=rt)
    assert client.runtime is rt and client.router.runtime is rt
    client.chat("hi")
    client.close()
    assert sorted(Closing.closed) == ["a", "b"]


def test_async_close_builds_nothing_it_then_closes() -> None:
    import asyncio

    Closing.closed = []
    rt = runtime()

    async def run() -> None:
        client = llmcore.AsyncClient(runtime=rt)
        await client.aclose()

    asyncio.run(run())
    assert rt.built_providers() == [] and Closing.closed == []


def test_runtime_and_config_together_are_refused() -> None:
    with pytest.raises(TypeError, match="either runtime"):
        llmcore.Client(Config(providers={}, agents={}), runtime=runtime())


def test_the_cli_builds_one_runtime(tmp_path: Path) -> None:
    from llmcore.cli.base import State

    (tmp_path / "llmcore.yaml").write_text("providers: {}\nagents: {}\n")
    state = State(str(tmp_path / "llmcore.yaml"), debug=False)
    rt = state.runtime
    assert state.client.runtime is rt and state.client.router.runtime is rt
    state.close()


def test_generate_without_plugins_gives_what_pluggy_gives() -> None:
    """With only llmcore's own implementations registered, ``Hooks.generate`` skips
    pluggy's multicall: the built-in reshaping still runs before the provider is called,
    exceptions pass unchanged, and a plugin registered later is called again."""
    pm = PluginManager(load_entry_points=False)
    hooks = Hooks(pm)
    seen: list[Any] = []

    class Reshaped:  # a provider type the built-in plugin reshapes requests for
        type_name = "anthropic"
        name = "o"

    def proceed(request: Any) -> Any:
        seen.append(request)
        return "answer"

    req = llmcore.ChatRequest(
        messages=[llmcore.Message("user", "hi")],
        model="m",
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"type": "object"}},
        },
    )
    call = GenerationCall(
        operation="chat",
        request=req,
        provider=Reshaped(),  # type: ignore[arg-type]
        is_async=False,
        proceed=proceed,
    )
    fast = hooks.generate(call)
    slow = pm.pm.hook.llmcore_generate(
        call=GenerationCall(
            operation="chat",
            request=req,
            provider=Reshaped(),  # type: ignore[arg-type]
            is_async=False,
            proceed=proceed,
        )
    )
    assert fast == slow == "answer"
    assert seen[0] == seen[1] and seen[0] is not req  # reshaped by the built-in plugin

    def boom(request: Any) -> Any:
        raise KeyError("from the provider")

    with pytest.raises(KeyError, match="from the provider"):
        hooks.generate(
            GenerationCall(
                operation="chat",
                request=req,
                provider=Reshaped(),  # type: ignore[arg-type]
                is_async=False,
                proceed=boom,
            )
        )
    pm.register(Plugin(), name="test-plugin")
    cached = llmcore.ChatRequest(
        messages=[llmcore.Message("user", "hi")], model="m", extra={"cached": True}
    )
    got = hooks.generate(
        GenerationCall(
            operation="chat",
            request=cached,
            provider=Reshaped(),  # type: ignore[arg-type]
            is_async=False,
            proceed=proceed,
        )
    )
    assert got.content == "from the cache"
