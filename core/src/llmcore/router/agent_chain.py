"""Agent chains for ``run_agent``: several agents (``run_agent(["claude-code", "aider"])``
or ``agents.<name>.fallback``) tried in order.

The next agent is tried only when the one before could not do the work at all: its
program is missing, it refused the key, it is rate limited, or its model endpoint is
down. Never after an agent changed files in place (the next one would start from a
half-edited tree); an agent isolated in its own worktree (``isolation: worktree``) left
the user's tree alone, so the chain may go on after it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..errors import (
    AgentAuthError,
    AgentConnectionError,
    AgentError,
    AgentNotFoundError,
    AgentRateLimitError,
)

if TYPE_CHECKING:
    from ..agents import Agent
    from ..runtime import Runtime
    from ..types import AgentResult

#: Failures that say "this agent cannot do it now", where another agent may.
GO_ON = (AgentNotFoundError, AgentAuthError, AgentRateLimitError, AgentConnectionError)


def chain_for(runtime: Runtime, agent: str | Sequence[str]) -> list[str]:
    """The agents to try: the ones given, or one and its configured ``fallback`` list."""
    if isinstance(agent, str):
        names = [agent]
        cfg = (runtime.config.agents or {}).get(agent)
        if cfg is not None:
            names += [n for n in cfg.fallback if n not in names]
        return names
    names = list(dict.fromkeys(agent))
    if not names:
        raise AgentError("run_agent needs at least one agent name")
    return names


def run_chain(
    runtime: Runtime, names: list[str], run_one: Callable[[Agent], AgentResult]
) -> AgentResult:
    """Run ``names`` in order until one does the work; see the module doc for when the
    next one is tried. The error of the last agent tried is raised, naming the others."""
    tried: list[str] = []
    for i, name in enumerate(names):
        agent = runtime.agent(name)
        try:
            return run_one(agent)
        except GO_ON as exc:
            changed = list(getattr(getattr(exc, "result", None), "files_modified", None) or [])
            isolated = agent.config.isolation == "worktree"
            last = i == len(names) - 1
            if changed and not isolated and not last:
                exc.message += (
                    f" (not handed to {names[i + 1]}: {name} already changed "
                    f"{len(changed)} file(s) in place)"
                )
                raise
            tried.append(f"{name}: {type(exc).__name__}")
            if last:
                if len(tried) > 1:
                    exc.message += " (tried in order: " + ", ".join(tried) + ")"
                raise
    raise AssertionError("unreachable")  # pragma: no cover
