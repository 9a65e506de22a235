"""llmcore plugin: The OpenCode agent, run with `opencode run`."""

from __future__ import annotations

from typing import Any

import llmcore

LLMCORE_HOOK_API = "1"


class OpenCodeAgent(llmcore.Agent):
    type_name = "opencode"
    program = "opencode"


@llmcore.hookimpl
def llmcore_register_agents() -> list[Any]:
    return [OpenCodeAgent]
