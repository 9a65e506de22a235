"""llmcore plugin: vLLM servers (one or several replicas), OpenAI-compatible plus vLLM's extras."""

from __future__ import annotations

from typing import Any

import llmcore
from llmcore import OpenAIProvider

LLMCORE_HOOK_API = "1"


class VLLMProvider(OpenAIProvider):
    type_name = "vllm"
    default_base_url = "http://localhost:8000/v1"
    default_api_key_env = None
    local = True


@llmcore.hookimpl
def llmcore_register_providers() -> list[Any]:
    return [VLLMProvider]
