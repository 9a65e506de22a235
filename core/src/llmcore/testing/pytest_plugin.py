"""Fixtures for testing llmcore plugins (registered through the ``pytest11`` entry point)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..plugins import PluginManager


@pytest.fixture(autouse=True)
def llmcore_isolated(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Point user config, state, data and cache dirs at a temporary directory."""
    home = tmp_path_factory.mktemp("llmcore-home")
    for var, sub in (
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_STATE_HOME", "state"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_CACHE_HOME", "cache"),
    ):
        (home / sub).mkdir()
        monkeypatch.setenv(var, str(home / sub))
    monkeypatch.delenv("LLMCORE_CONFIG", raising=False)
    monkeypatch.delenv("LLMCORE_PLUGINS", raising=False)
    monkeypatch.delenv("LLMCORE_STRICT_PLUGINS", raising=False)
    return home


@pytest.fixture
def llmcore_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    """``llmcore_config(yaml_text)`` writes the file and makes it the active config."""

    def write(text: str) -> Path:
        path = tmp_path / "llmcore.yaml"
        path.write_text(text, encoding="utf-8")
        monkeypatch.setenv("LLMCORE_CONFIG", str(path))
        return path

    return write


@pytest.fixture
def plugin_manager() -> PluginManager:
    """A plugin manager with only the core's own hooks (no installed plugin loaded)."""
    return PluginManager(load_entry_points=False)


@pytest.fixture
def register_plugin(plugin_manager: PluginManager) -> Callable[..., Any]:
    """``register_plugin(obj, name=None)`` registers an in-test plugin into ``plugin_manager``."""

    def register(plugin: object, name: str | None = None) -> object:
        plugin_manager.register(plugin, name=name)
        return plugin

    return register


@pytest.fixture
def make_client(plugin_manager: PluginManager) -> Iterator[Callable[..., Any]]:
    """``make_client(yaml_text, *plugins, async_=False)``: a client over in-test plugins."""
    from ..client import AsyncClient, Client
    from ..config import parse_config

    made: list[Any] = []

    def make(text: str = "", *plugins: object, async_: bool = False) -> Any:
        for p in plugins:
            plugin_manager.register(p)
        cls = AsyncClient if async_ else Client
        client = cls(parse_config(text), plugin_manager=plugin_manager)
        made.append(client)
        return client

    yield make
    for c in made:
        c.runtime.close()


@pytest.fixture
def ollama_fake() -> Iterator[Any]:
    """A started :class:`~llmcore.testing.fakes.OllamaFake` on 127.0.0.1, stopped afterwards."""
    from .fakes.ollama import OllamaFake

    with OllamaFake() as fake:
        yield fake


@pytest.fixture
def agent_repo(tmp_path: Path) -> Path:
    """A git repository (``tmp_path/"work"``) with a committed ``README.md``, for agent runs:
    the files an agent changed are judged by git. See :mod:`llmcore.testing.agents`."""
    from .agents import git_repo

    return git_repo(tmp_path / "work")
