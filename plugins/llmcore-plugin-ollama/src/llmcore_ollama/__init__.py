"""llmcore plugin: Ollama (local and cloud) through its native API."""

from __future__ import annotations

from typing import Any

import llmcore
from llmcore import Provider

LLMCORE_HOOK_API = "1"


class OllamaProvider(Provider):
    type_name = "ollama"
    default_base_url = "http://localhost:11434"
    default_api_key_env = None
    local = True


@llmcore.hookimpl
def llmcore_register_providers() -> list[Any]:
    return [OllamaProvider]
