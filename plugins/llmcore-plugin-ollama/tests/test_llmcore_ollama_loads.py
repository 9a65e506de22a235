from __future__ import annotations

from llmcore.config import Config
from llmcore.runtime import Runtime


def test_plugin_registers_its_type() -> None:
    rt = Runtime(Config())
    record = next(r for r in rt.pm.records if r.name == "llmcore-plugin-ollama")
    assert record.status == "loaded", record.error
    types = rt.provider_types
    assert "ollama" in types
    assert types["ollama"].__module__.startswith("llmcore_ollama")
