"""llmcore plugin: The Aider coding agent, run with --message."""

from __future__ import annotations

from typing import Any

import llmcore

LLMCORE_HOOK_API = "1"


class AiderAgent(llmcore.Agent):
    type_name = "aider"
    program = "aider"


@llmcore.hookimpl
def llmcore_register_agents() -> list[Any]:
    return [AiderAgent]
