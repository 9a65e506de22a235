"""Terminal coding agents answering plain prompts as router candidates (``kind='cli'``).

Only agents configured with ``serve_prompts: true`` whose program is installed take part;
the chat becomes one prompt, the agent runs read-only, and its result becomes a
:class:`ChatResponse` (with the agent's own usage and cost when it reports them).

A routed run honours what a direct ``run_agent`` does: ``via_gateway`` (through the one
dispatcher), ``on_event=`` and ``cancel=`` given to ``chat`` (routing hints, never sent to a
server), and cancelling the awaiting task of an async chat stops the agent's processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..agent_dispatch import dispatch
from ..errors import BadRequestError, ResponseError
from ..types import AgentTask, ChatRequest, ChatResponse, Usage

if TYPE_CHECKING:
    from ..agents import Agent, CancelToken, EventCallback
    from ..config import Config
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
    request_id: str | None,
    config: Config,
) -> Any:
    """Run the agent on the request's prompt: a ChatResponse, or an awaitable of one.

    Dispatched like ``Client.run_agent`` (:func:`llmcore.agent_dispatch.dispatch`: hooks,
    ``via_gateway`` and one ``agent_run`` event); the event carries ``request_id``, so the
    cost, also on the router's ``request`` event, is counted once."""
    agent = cand.agent
    assert agent is not None
    extra = request.extra or {}
    on_event, cancel = run_controls(extra)
    task = AgentTask(
        prompt=prompt_text(request.messages),
        cwd=os.fspath(extra.get("cwd") or os.getcwd()),
        mode=agent.config.mode if extra.get("edit") else "read_only",
        model=cand.model,
        timeout=request.timeout or agent.config.timeout,
        args=list(agent.config.args),
    )

    def run(stop: CancelToken | None) -> ChatResponse:
        result = dispatch(hooks, emit, agent, task, on_event, stop, request_id, config=config)
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
        return _run_async(run, cancel)
    return run(cancel)


async def _run_async(
    run: Callable[[CancelToken | None], ChatResponse], cancel: CancelToken | None
) -> ChatResponse:
    """``run`` on a thread (an agent run blocks on a subprocess). Cancelling the awaiting
    task stops the agent and waits for it, so no process outlives the cancelled chat (as
    ``AsyncClient.run_agent`` does); a ``cancel=`` token given to the chat works too."""
    import asyncio
    import contextlib
    import contextvars
    import threading

    stop = threading.Event()

    class Either:  # the caller's token or our own, whichever is set first
        def is_set(self) -> bool:
            return stop.is_set() or (cancel is not None and cancel.is_set())

    # The caller's context goes along (as asyncio.to_thread does): the gateway tags the
    # run's events with the key that asked through a context variable.
    ctx = contextvars.copy_context()
    fut = asyncio.get_running_loop().run_in_executor(None, ctx.run, run, Either())
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        stop.set()
        with contextlib.suppress(BaseException):
            await fut
        raise


def run_controls(extra: Mapping[str, Any]) -> tuple[EventCallback | None, CancelToken | None]:
    """The ``on_event`` callback and ``cancel`` token a chat gave for an agent's run,
    checked (a gateway's JSON body cannot smuggle a string in as either)."""
    on_event = extra.get("on_event")
    cancel = extra.get("cancel")
    if on_event is not None and not callable(on_event):
        raise BadRequestError(
            f"on_event must be a callable that takes one event dict, got {type(on_event).__name__}",
            hint="pass on_event=lambda ev: ... to chat(), or leave it out",
        )
    if cancel is not None and not callable(getattr(cancel, "is_set", None)):
        raise BadRequestError(
            f"cancel must have is_set() (a threading.Event), got {type(cancel).__name__}",
            hint="pass cancel=threading.Event() to chat() and set() it to stop the agent",
        )
    return on_event, cancel


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
