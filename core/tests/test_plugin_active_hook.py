"""``llmcore_plugin_active``: a plugin that a config turns off is left out of that config's
model calls (its ``llmcore_generate`` wrapper never runs), asked once per config."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import llmcore
import pytest
from llmcore import hookimpl
from llmcore.config import parse_config
from llmcore.plugins import PluginManager
from llmcore.testing import StaticProvider

CONFIG = "providers:\n  s: {plugin: static, reply: hi, models: [m1]}\nrouting: {state: memory}\n"


class Providers:
    @hookimpl
    def llmcore_register_providers(self) -> list[Any]:
        return [StaticProvider]


class Wrapping:
    """Wraps every call; on only under configs whose routing strategy is not ``priority``
    (any config fact would do: a plugin decides from its own section)."""

    def __init__(self) -> None:
        self.wrapped = 0
        self.asked = 0

    @hookimpl
    def llmcore_plugin_active(self, config: llmcore.Config) -> bool:
        self.asked += 1
        return config.routing.strategy != "priority"

    @hookimpl(wrapper=True)
    def llmcore_generate(self, call: Any) -> Generator[None, Any, Any]:
        self.wrapped += 1
        result = yield
        return result


def client(pm: PluginManager, text: str) -> llmcore.Client:
    return llmcore.Client(parse_config(text), plugin_manager=pm)


def test_a_plugin_off_under_a_config_is_left_out_of_its_calls() -> None:
    pm = PluginManager(load_entry_points=False)
    pm.register(Providers())
    plugin = Wrapping()
    pm.register(plugin, name="wrapping")
    off = client(pm, CONFIG)  # strategy: priority (the default)
    on = client(pm, CONFIG.replace("state: memory", "state: memory, strategy: round_robin"))
    for _ in range(3):
        assert off.chat("x").content == "hi"
    assert plugin.wrapped == 0
    assert on.chat("x").content == "hi" and plugin.wrapped == 1
    # asked once per config (the first call under it), not per call
    assert plugin.asked == 2
    assert off.runtime.hooks.plugins_off(off.runtime.config) == {"wrapping"}
    off.close()
    on.close()


def test_a_plugin_registered_later_is_seen_by_the_next_call() -> None:
    pm = PluginManager(load_entry_points=False)
    pm.register(Providers())
    c = client(pm, CONFIG.replace("state: memory", "state: memory, strategy: round_robin"))
    assert c.chat("x").content == "hi"  # only the core's implementations so far
    plugin = Wrapping()
    pm.register(plugin)
    assert c.chat("x").content == "hi" and plugin.wrapped == 1
    c.close()


class Broken:
    @hookimpl
    def llmcore_plugin_active(self, config: Any) -> bool:
        raise RuntimeError("cannot tell")

    @hookimpl(wrapper=True)
    def llmcore_generate(self, call: Any) -> Generator[None, Any, Any]:
        raise AssertionError("a plugin that failed is not called")
        yield  # pragma: no cover


def test_a_plugin_whose_answer_raises_is_marked_failed_and_left_out() -> None:
    pm = PluginManager(load_entry_points=False)
    pm.register(Providers())
    pm.register(Broken(), name="broken")
    c = client(pm, CONFIG)
    assert c.chat("x").content == "hi"
    record = next(r for r in pm.records if r.name == "broken")
    assert record.status == "failed" and "cannot tell" in (record.error or "")
    c.close()


@pytest.mark.parametrize("answer", [True, None])
def test_true_or_none_takes_part(answer: bool | None) -> None:
    class Plugin(Wrapping):
        @hookimpl
        def llmcore_plugin_active(self, config: llmcore.Config) -> bool | None:
            return answer

    pm = PluginManager(load_entry_points=False)
    pm.register(Providers())
    plugin = Plugin()
    pm.register(plugin)
    c = client(pm, CONFIG)
    c.chat("x")
    assert plugin.wrapped == 1
    c.close()
