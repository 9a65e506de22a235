"""llmcore plugin: OpenAI's Codex CLI agent, run with `codex exec`."""

from __future__ import annotations

from typing import Any

import llmcore

LLMCORE_HOOK_API = "1"


class CodexAgent(llmcore.Agent):
    type_name = "codex"
    program = "codex"


@llmcore.hookimpl
def llmcore_register_agents() -> list[Any]:
    return [CodexAgent]
