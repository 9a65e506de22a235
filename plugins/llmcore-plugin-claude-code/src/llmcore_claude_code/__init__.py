"""llmcore plugin: Anthropic's Claude Code agent, run non-interactively."""

from __future__ import annotations

from typing import Any

import llmcore

LLMCORE_HOOK_API = "1"


class ClaudeCodeAgent(llmcore.Agent):
    type_name = "claude-code"
    program = "claude"


@llmcore.hookimpl
def llmcore_register_agents() -> list[Any]:
    return [ClaudeCodeAgent]
