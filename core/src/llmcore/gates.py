"""Candidates the plan keeps but the run skips with a reason: over budget, or blind to images.

Called once per plan (:meth:`llmcore.router.candidates.Planner.plan`), so it is on every
request's path: with no budget configured and no image in the request it costs two attribute
reads and a loop over the messages. A skipped candidate is reported as a skipped attempt,
like a cooling one, without a network call; a spent global budget raises
:class:`llmcore.budgets.BudgetExceeded` before anything is tried.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .budgets import for_runtime

if TYPE_CHECKING:
    from .router.candidates import Candidate
    from .runtime import Runtime

_CHAT_OPS = ("chat", "stream")


def gate(runtime: Runtime, pricing: Any, request: Any, plan: list[Candidate], op: str) -> None:
    b = for_runtime(runtime)
    if b.active:
        b.check_global()
        for c in plan:
            budget = c.provider.config.budget if c.provider is not None else None
            if budget is not None:
                over = b.provider_over(c.name, budget)
                if over is not None:
                    c.skip = ("OverBudget", *over)
    if op in _CHAT_OPS:
        for m in request.messages:
            if m.images:
                _skip_blind(pricing.registry, plan)
                return


def _skip_blind(registry: Any, plan: list[Candidate]) -> None:
    for c in plan:
        entry = registry.info(c.model, c.type_name)
        if c.skip is None and entry is not None and "vision" not in entry.capabilities:
            c.skip = (
                "NoVision",
                f"{c.model} cannot see images (model registry)",
                "send images to a vision model, or set its capabilities in your registry file",
                None,
            )
