"""llmcore plugin: Anthropic's Claude Code agent, run non-interactively.

Registers the agent type ``claude-code`` (see :mod:`llmcore_claude_code.agent`).
"""

from __future__ import annotations

from typing import Any

import llmcore

LLMCORE_HOOK_API = "1"


@llmcore.hookimpl
def llmcore_register_agents() -> list[Any]:
    from .agent import ClaudeCodeAgent

    return [ClaudeCodeAgent]


def __getattr__(name: str) -> Any:
    if name == "ClaudeCodeAgent":
        from .agent import ClaudeCodeAgent

        return ClaudeCodeAgent
    raise AttributeError(name)
