"""llmcore plugin: LM Studio's local server, OpenAI-compatible plus its native model list."""

from __future__ import annotations

from typing import Any

import llmcore
from llmcore import OpenAIProvider

LLMCORE_HOOK_API = "1"


class LMStudioProvider(OpenAIProvider):
    type_name = "lmstudio"
    default_base_url = "http://localhost:1234/v1"
    default_api_key_env = None
    local = True


@llmcore.hookimpl
def llmcore_register_providers() -> list[Any]:
    return [LMStudioProvider]
