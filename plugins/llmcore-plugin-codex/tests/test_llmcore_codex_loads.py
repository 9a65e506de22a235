from __future__ import annotations

from llmcore.config import Config
from llmcore.runtime import Runtime


def test_plugin_registers_its_type() -> None:
    rt = Runtime(Config())
    record = next(r for r in rt.pm.records if r.name == "llmcore-plugin-codex")
    assert record.status == "loaded", record.error
    types = rt.agent_types
    assert "codex" in types
    assert types["codex"].__module__ == "llmcore_codex.agent"
