"""llmcore plugin: Qwen Code agent, run non-interactively."""

from __future__ import annotations

from typing import Any

import llmcore

LLMCORE_HOOK_API = "1"


class QwenAgent(llmcore.Agent):
    type_name = "qwen"
    program = "qwen"


@llmcore.hookimpl
def llmcore_register_agents() -> list[Any]:
    return [QwenAgent]
