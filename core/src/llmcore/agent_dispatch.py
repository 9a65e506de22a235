"""The one place an agent run is dispatched: through the ``llmcore_run_agent`` hooks, with
one ``agent_run`` metrics event, whether the caller is ``Client.run_agent`` or the router
(an agent answering a routed chat, ``kind='cli'``).

A routed run's event carries the router's ``request_id``: that request's own ``request``
event already holds the answer's cost, so spend and usage sums count an ``agent_run``
event only when it has no request id (:func:`llmcore.metrics.counts_as_spend`): nothing is
paid twice.

Options a run honours, whichever way it came: ``via_gateway`` (the agent's own model calls
go through a local ``llmcore serve``), ``on_event`` (each event as the agent prints it) and
``cancel`` (stops the agent and every process it started).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .hooks import AgentCall
from .metrics import MetricsEvent

if TYPE_CHECKING:
    from .agents import Agent, EventCallback
    from .config import Config
    from .hooks import Hooks
    from .types import AgentResult, AgentTask


def takes_cancel(agent: Agent) -> bool:
    """Does ``agent.run`` take ``cancel=``? The base class's does; a plugin that overrides
    ``run(task, on_event)`` without it runs to its end (there is nothing to stop it with)."""
    import inspect

    try:
        params = inspect.signature(agent.run).parameters
    except (TypeError, ValueError):
        return True
    return "cancel" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def dispatch(
    hooks: Hooks,
    emit: Callable[[MetricsEvent], None],
    agent: Agent,
    task: AgentTask,
    on_event: EventCallback | None = None,
    cancel: Any = None,
    request_id: str | None = None,
    *,
    config: Config,
) -> AgentResult:
    """Run ``task`` on ``agent`` through the hooks and emit its ``agent_run`` event
    (``request_id``: the routed request it answers, if any; ``config``: the root config,
    whose gateway a ``via_gateway`` agent is pointed at)."""
    if agent.config.via_gateway:  # its endpoint becomes a local `llmcore serve`
        from .serve.agents import through_gateway

        agent = through_gateway(config, agent)

    def proceed(t: AgentTask) -> AgentResult:
        if cancel is None or not takes_cancel(agent):
            return agent.run(t, on_event)
        return agent.run(t, on_event, cancel=cancel)

    call = AgentCall(task=task, agent=agent, proceed=proceed)
    t0 = time.monotonic()
    outcome = "ok"
    result: AgentResult | None = None
    try:
        result = hooks.run_agent(call)
        assert result is not None
        if not result.success:
            outcome = "failed"
        return result
    except Exception as exc:
        outcome = type(exc).__name__
        raise
    finally:
        took = time.monotonic() - t0
        usage = result.usage if result is not None else None
        emit(
            MetricsEvent(
                kind="agent_run",
                agent=agent.name,
                plugin=agent.type_name,
                provider=agent.name,
                model=task.model,
                outcome=outcome,
                duration_s=took,
                latency_s=took,
                input_tokens=usage.input_tokens if usage else None,
                output_tokens=usage.output_tokens if usage else None,
                cost_usd=result.cost_usd if result else None,
                files_changed=len(result.files_modified) if result else None,
                session_id=result.session_id if result else None,
                request_id=request_id,
            )
        )
