"""llmcore plugin: Ollama (local and cloud) through its native API."""

from __future__ import annotations

from typing import Any

import llmcore

LLMCORE_HOOK_API = "1"

__all__ = ["OllamaProvider"]


@llmcore.hookimpl
def llmcore_register_providers() -> list[Any]:
    # Imported here, not at module level: `llmcore --help` imports every plugin module.
    from .provider import OllamaProvider

    return [OllamaProvider]


def __getattr__(name: str) -> Any:
    if name == "OllamaProvider":
        from .provider import OllamaProvider

        return OllamaProvider
    raise AttributeError(f"module 'llmcore_ollama' has no attribute {name!r}")
