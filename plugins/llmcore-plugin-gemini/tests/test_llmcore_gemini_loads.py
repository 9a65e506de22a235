from __future__ import annotations

from llmcore.config import Config
from llmcore.runtime import Runtime


def test_plugin_registers_its_type() -> None:
    rt = Runtime(Config())
    record = next(r for r in rt.pm.records if r.name == "llmcore-plugin-gemini")
    assert record.status == "loaded", record.error
    types = rt.agent_types
    assert "gemini" in types
    assert types["gemini"].__module__ == "llmcore_gemini.agent"
