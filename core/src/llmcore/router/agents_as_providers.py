"""Terminal coding agents answering plain prompts as router candidates (``kind='cli'``).

Only agents configured with ``serve_prompts: true`` whose program is installed take part;
the chat becomes one prompt, the agent runs read-only, and its result becomes a
:class:`ChatResponse` (with the agent's own usage and cost when it reports them).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..agent_dispatch import dispatch
from ..errors import ResponseError
from ..types import AgentTask, ChatRequest, ChatResponse, Usage

if TYPE_CHECKING:
    from ..agents import Agent
    from ..hooks import Hooks
    from ..metrics import MetricsEvent
    from .candidates import Candidate


def serving_agents(
    agents: Mapping[str, Agent], available: dict[str, bool], implied: bool = False
) -> dict[str, Agent]:
    """Enabled agents with ``serve_prompts: true`` (every enabled one when ``implied``:
    the ``api_first`` / ``cli_first`` strategies name the CLI mode) whose program is
    installed.

    ``available`` caches the (slow: it looks for a program) installed check per name.
    """
    out: dict[str, Agent] = {}
    for name, agent in agents.items():
        if not (agent.config.serve_prompts or implied):
            continue
        if name not in available:
            available[name] = agent.available()
        if available[name]:
            out[name] = agent
    return out


def agent_call(
    hooks: Hooks,
    emit: Callable[[MetricsEvent], None],
    cand: Candidate,
    request: ChatRequest,
    is_async: bool,
    request_id: str | None = None,
) -> Any:
    """Run the agent on the request's prompt: a ChatResponse, or an awaitable of one.

    Dispatched like ``Client.run_agent`` (:func:`llmcore.agent_dispatch.dispatch`: hooks and
    one ``agent_run`` event); the event carries ``request_id``, so the cost, also on the
    router's ``request`` event, is counted once."""
    agent = cand.agent
    assert agent is not None
    extra = request.extra or {}
    task = AgentTask(
        prompt=prompt_text(request.messages),
        cwd=os.fspath(extra.get("cwd") or os.getcwd()),
        mode=agent.config.mode if extra.get("edit") else "read_only",
        model=cand.model,
        timeout=request.timeout or agent.config.timeout,
        args=list(agent.config.args),
    )

    def run() -> ChatResponse:
        result = dispatch(hooks, emit, agent, task, request_id=request_id)
        if not result.success:
            raise ResponseError(
                f"{agent.name}: {result.error or f'exited with {result.exit_code}'}",
                provider=agent.name,
                model=cand.model,
            )
        return ChatResponse(
            content=result.output,
            model=result.model or cand.model,
            provider=agent.name,
            usage=result.usage or Usage(),
            cost_usd=result.cost_usd,
            finish_reason="stop",
        )

    if is_async:
        import asyncio

        return asyncio.to_thread(run)  # an agent run blocks on a subprocess
    return run()


def cannot_carry(request: Any) -> list[str]:
    """What an agent would have to drop or flatten to answer ``request`` (empty: nothing).

    An agent takes one prompt of text: images, tools, a response format, sampling options
    and a chat of several messages (a system prompt, a history) do not survive the trip,
    so such a request is never given to one.
    """
    out: list[str] = []
    messages = getattr(request, "messages", None) or []
    if any(getattr(m, "images", None) for m in messages):
        out.append("images")
    if getattr(request, "tools", None) or getattr(request, "tool_choice", None):
        out.append("tools")
    if getattr(request, "response_format", None):
        out.append("a response format")
    sampling = [
        k
        for k in ("temperature", "top_p", "seed", "max_tokens", "stop")
        if getattr(request, k, None) is not None
    ]
    if sampling:
        out.append("sampling options (" + ", ".join(sampling) + ")")
    if len(messages) > 1:
        out.append("a chat of several messages (system prompt or history)")
    return out


def prompt_text(messages: list[Any]) -> str:
    """A chat as one prompt for an agent: the lone user message, or ``role: text`` lines."""
    if len(messages) == 1 and messages[0].role == "user":
        return str(messages[0].content)
    return "\n\n".join(f"{m.role}: {m.content}" for m in messages)
