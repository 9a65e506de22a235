"""llmcore plugin: Google's Gemini CLI agent, run non-interactively.

Registers the agent type ``gemini`` (see :mod:`llmcore_gemini.agent`).
"""

from __future__ import annotations

from typing import Any

import llmcore

LLMCORE_HOOK_API = "1"


@llmcore.hookimpl
def llmcore_register_agents() -> list[Any]:
    from .agent import GeminiAgent

    return [GeminiAgent]


def __getattr__(name: str) -> Any:
    if name == "GeminiAgent":
        from .agent import GeminiAgent

        return GeminiAgent
    raise AttributeError(name)
