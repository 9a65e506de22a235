"""llmcore plugin: Ollama (local and cloud) through its native API."""

from __future__ import annotations

from typing import Any

import llmcore

from .provider import OllamaProvider

LLMCORE_HOOK_API = "1"

__all__ = ["OllamaProvider"]


@llmcore.hookimpl
def llmcore_register_providers() -> list[Any]:
    return [OllamaProvider]
