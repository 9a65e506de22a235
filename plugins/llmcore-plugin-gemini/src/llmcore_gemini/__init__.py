"""llmcore plugin: Google's Gemini CLI agent, run non-interactively."""

from __future__ import annotations

from typing import Any

import llmcore

LLMCORE_HOOK_API = "1"


class GeminiAgent(llmcore.Agent):
    type_name = "gemini"
    program = "gemini"


@llmcore.hookimpl
def llmcore_register_agents() -> list[Any]:
    return [GeminiAgent]
