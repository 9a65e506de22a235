"""A plugin declares a top-level config section; it is checked like the core's own."""

from __future__ import annotations

import importlib.metadata as md
import sys
import types

import attrs
import pytest
from llmcore import hookimpl, plugin_loading
from llmcore.config import parse_config, section
from llmcore.errors import ConfigError


@attrs.define
class GreeterOptions:
    greeting: str = "hello"
    times: int = 1


@pytest.fixture(autouse=True)
def greeter_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed plugin (entry point and module) that declares ``greeter:``."""
    module = types.ModuleType("greeter_plugin_for_tests")

    @hookimpl
    def llmcore_config_sections() -> list[tuple[str, type]]:
        return [("greeter", GreeterOptions)]

    module.llmcore_config_sections = llmcore_config_sections  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    ep = md.EntryPoint(name="greeter", value=module.__name__, group="llmcore")
    real = plugin_loading.entry_points
    monkeypatch.setattr(plugin_loading, "entry_points", lambda: [*real(), ep])


def test_a_declared_section_is_structured() -> None:
    cfg = parse_config("greeter:\n  greeting: hi\n  times: 3\n")
    assert section(cfg, "greeter", GreeterOptions) == GreeterOptions("hi", 3)
    assert section(parse_config(""), "greeter", GreeterOptions) == GreeterOptions()


def test_unknown_keys_get_a_suggestion_with_the_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("routing: {}\ngreeter:\n  greting: hi\n")
    assert info.value.path == "greeter.greting" and info.value.line == 3
    assert "did you mean greeting?" in str(info.value)


def test_wrong_types_name_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("greeter:\n  times: many\n")
    assert info.value.path == "greeter.times"


def test_an_undeclared_section_is_still_an_error_with_a_suggestion() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("greeterr: {}\n")
    assert "unknown key, did you mean greeter?" in str(info.value)
    with pytest.raises(ConfigError, match="did you mean routing"):
        parse_config("routng: {}\n")


def test_a_disabled_plugin_s_section_is_unknown() -> None:
    with pytest.raises(ConfigError, match="greeter: unknown key"):
        parse_config("plugins: {disabled: [greeter]}\ngreeter: {}\n")
