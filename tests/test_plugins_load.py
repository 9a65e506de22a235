"""Every plugin distribution of the workspace: its entry point loads, its types register
under their names, and ``llmcore plugins`` would show it loaded.

One parametrized test over the workspace's plugin list (tests/workspace_plugins.py), so a
new plugin directory is checked without another copied file.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any

import pytest
from llmcore.config import Config
from llmcore.runtime import Runtime
from workspace_plugins import PLUGINS, ROOT, tomllib

# register hook -> the Runtime table its types land in
TABLES = {
    "llmcore_register_providers": "provider_types",
    "llmcore_register_agents": "agent_types",
    "llmcore_register_metrics_sinks": "sink_types",
}


def test_the_root_pyproject_names_every_plugin_directory() -> None:
    # uv installs a workspace member only when the root depends on it, so the root names
    # each plugin; those names must be exactly the directories the list is read from.
    root = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    deps = {d for d in root["project"]["dependencies"] if d != "llmcore-framework"}
    sources = set(root["tool"]["uv"]["sources"]) - {"llmcore-framework"}
    assert len(PLUGINS) == 11
    assert deps == set(PLUGINS), "add the plugin to the root pyproject.toml's dependencies"
    assert sources == set(PLUGINS), "add the plugin to the root [tool.uv.sources]"


@pytest.mark.parametrize("dist", PLUGINS)
def test_plugin_loads_and_registers_its_types(dist: str) -> None:
    eps = [ep for ep in metadata.distribution(dist).entry_points if ep.group == "llmcore"]
    assert len(eps) == 1, f"{dist} must declare one `llmcore` entry point, has {eps}"
    module = eps[0].load()
    assert module is importlib.import_module(eps[0].value)

    rt = Runtime(Config())
    record = next(r for r in rt.pm.records if r.name == dist)
    assert record.status == "loaded", record.error
    assert record.module == module.__name__
    assert record.hooks, f"{dist} implements no hook"

    registered = 0
    for hook, table in TABLES.items():
        impl = getattr(module, hook, None)
        if impl is None:
            continue
        types: dict[str, Any] = getattr(rt, table)
        for cls in impl():
            assert types.get(cls.type_name) is cls, f"{dist}'s {cls.type_name!r} not in {table}"
            assert cls.__module__.startswith(module.__name__)
            registered += 1
    # Every plugin but the cache (which adds commands and a hook) offers at least one type.
    assert registered or dist == "llmcore-plugin-cache"
