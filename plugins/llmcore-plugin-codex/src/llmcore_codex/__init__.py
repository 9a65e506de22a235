"""llmcore plugin: OpenAI's Codex CLI agent, run with ``codex exec``.

Registers the agent type ``codex`` (see :mod:`llmcore_codex.agent`).
"""

from __future__ import annotations

from typing import Any

import llmcore

LLMCORE_HOOK_API = "1"


@llmcore.hookimpl
def llmcore_register_agents() -> list[Any]:
    from .agent import CodexAgent

    return [CodexAgent]


def __getattr__(name: str) -> Any:
    if name == "CodexAgent":
        from .agent import CodexAgent

        return CodexAgent
    raise AttributeError(name)
