"""``Client`` and ``AsyncClient``: the public API."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import attrs

from .agents import Agent, EventCallback
from .config import Config, load_config
from .hooks import AgentCall
from .metrics import MetricsEvent
from .plugins import PluginManager
from .provider import Provider
from .router import Router
from .runtime import Runtime
from .types import (
    AgentResult,
    AgentTask,
    ChatRequest,
    ChatResponse,
    EmbeddingResponse,
    Message,
    ModelInfo,
    StreamChunk,
    as_messages,
)

_REQUEST_FIELDS = {f.name for f in attrs.fields(ChatRequest)} - {"messages", "model", "extra"}
Messages = str | Sequence[Message] | Sequence[dict[str, Any]]


def build_request(
    messages: Messages, model: str | None, system: str | None, options: dict[str, Any]
) -> ChatRequest:
    msgs = as_messages(messages if isinstance(messages, str) else list(messages))  # type: ignore[arg-type]
    if system:
        msgs.insert(0, Message("system", system))
    known = {k: v for k, v in options.items() if k in _REQUEST_FIELDS}
    extra = {k: v for k, v in options.items() if k not in _REQUEST_FIELDS}
    return ChatRequest(messages=msgs, model=model, extra=extra, **known)


class _Base:
    def __init__(
        self,
        config: Config | None = None,
        *,
        providers: Sequence[Provider] | None = None,
        agents: Sequence[Agent] | None = None,
        plugin_manager: PluginManager | None = None,
    ) -> None:
        if config is None:
            config = Config(providers={}, agents={}) if providers or agents else load_config()
        self.runtime = Runtime(config, plugin_manager)
        for p in providers or ():
            self.runtime.add_provider(p)
        for a in agents or ():
            self.runtime.agents[a.name] = a
        self.router = Router(self.runtime)

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None) -> Any:
        """Build a client from ``llmcore.yaml`` (found the usual way when ``path`` is None)."""
        return cls(load_config(path))

    def _task(self, agent: Agent, prompt: str, cwd: str | os.PathLike[str] | None, mode: str | None,
              model: str | None, resume: str | None, timeout: float | None,
              args: Sequence[str] | None) -> AgentTask:
        cfg = agent.config
        return AgentTask(
            prompt=prompt, cwd=os.fspath(cwd) if cwd is not None else os.getcwd(),
            mode=mode or cfg.mode, model=model or cfg.model, resume=resume,
            timeout=timeout or cfg.timeout, args=[*cfg.args, *(args or [])],
        )

    def _agent_run(self, agent: Agent, task: AgentTask,
                   on_event: EventCallback | None, cancel: Any = None) -> AgentResult:
        if agent.config.via_gateway:  # its endpoint becomes a local `llmcore serve`
            from .serve.agents import through_gateway

            agent = through_gateway(self.runtime, agent)
        def proceed(t: AgentTask) -> AgentResult:
            if cancel is None:
                return agent.run(t, on_event)
            return agent.run(t, on_event, cancel=cancel)

        call = AgentCall(task=task, agent=agent, proceed=proceed)
        t0 = time.monotonic()
        outcome = "ok"
        result: AgentResult | None = None
        try:
            result = self.runtime.pm.hook.llmcore_run_agent(call=call)
            assert result is not None
            if not result.success:
                outcome = "failed"
            return result
        except Exception as exc:
            outcome = type(exc).__name__
            raise
        finally:
            self.runtime.metrics.emit(MetricsEvent(
                kind="agent_run", agent=agent.name, plugin=agent.type_name, provider=agent.name,
                model=task.model, outcome=outcome, duration_s=time.monotonic() - t0,
                latency_s=time.monotonic() - t0,
                input_tokens=result.usage.input_tokens if result and result.usage else None,
                output_tokens=result.usage.output_tokens if result and result.usage else None,
                cost_usd=result.cost_usd if result else None,
                files_changed=len(result.files_modified) if result else None,
                session_id=result.session_id if result else None,
            ))


class Client(_Base):
    """Synchronous client. Use as a context manager to close pooled connections."""

    def chat(self, messages: Messages, *, model: str | None = None, provider: str | None = None,
             system: str | None = None, fallback: bool | None = None,
             require: list[str] | None = None, min_context: int | None = None,
             **options: Any) -> ChatResponse:
        """Send a chat and return the whole answer; fails over per the routing config.

        ``require`` (capability tags such as ``vision``, ``tools``) and ``min_context``
        (tokens) keep only the models the registry says can serve the request."""
        request = build_request(messages, model, system, options)
        return self.router.chat(request, provider=provider, fallback=fallback,
                                require=require, min_context=min_context)

    def stream(self, messages: Messages, *, model: str | None = None,
               provider: str | None = None, system: str | None = None,
               fallback: bool | None = None, require: list[str] | None = None,
               min_context: int | None = None, **options: Any) -> Iterator[StreamChunk]:
        """Yield the answer as it is generated."""
        request = build_request(messages, model, system, options)
        request.stream = True
        return self.router.stream(request, provider=provider, fallback=fallback,
                                  require=require, min_context=min_context)

    def generate(self, prompt: str, *, model: str | None = None, provider: str | None = None,
                 fallback: bool | None = None, **options: Any) -> ChatResponse:
        """A raw text completion (no chat template)."""
        request = build_request(prompt, model, None, options)
        request.extra["prompt"] = prompt
        return self.router.chat(request, provider=provider, fallback=fallback,
                                operation="generate")

    def embed(self, texts: str | Sequence[str], *, model: str | None = None,
              provider: str | None = None) -> EmbeddingResponse:
        return self.router.embed([texts] if isinstance(texts, str) else list(texts),
                                 model=model, provider=provider)

    def models(self, provider: str | None = None) -> list[ModelInfo]:
        return self.router.models(provider)

    def run_agent(self, agent: str, prompt: str, *, cwd: str | os.PathLike[str] | None = None,
                  mode: str | None = None, model: str | None = None, resume: str | None = None,
                  timeout: float | None = None, args: Sequence[str] | None = None,
                  on_event: EventCallback | None = None) -> AgentResult:
        """Run a coding agent on ``prompt`` in ``cwd`` and return what it did."""
        a = self.runtime.agent(agent)
        task = self._task(a, prompt, cwd, mode, model, resume, timeout, args)
        return self._agent_run(a, task, on_event)

    def close(self) -> None:
        self.router.close()
        self.runtime.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Base):
    """Asynchronous client; the same methods as :class:`Client`, awaitable."""

    async def chat(self, messages: Messages, *, model: str | None = None,
                   provider: str | None = None, system: str | None = None,
                   fallback: bool | None = None, require: list[str] | None = None,
                   min_context: int | None = None, **options: Any) -> ChatResponse:
        request = build_request(messages, model, system, options)
        return await self.router.achat(request, provider=provider, fallback=fallback,
                                       require=require, min_context=min_context)

    def stream(self, messages: Messages, *, model: str | None = None,
               provider: str | None = None, system: str | None = None,
               fallback: bool | None = None, require: list[str] | None = None,
               min_context: int | None = None,
               **options: Any) -> AsyncIterator[StreamChunk]:
        request = build_request(messages, model, system, options)
        request.stream = True
        return self.router.astream(request, provider=provider, fallback=fallback,
                                   require=require, min_context=min_context)

    async def generate(self, prompt: str, *, model: str | None = None,
                       provider: str | None = None, fallback: bool | None = None,
                       **options: Any) -> ChatResponse:
        request = build_request(prompt, model, None, options)
        request.extra["prompt"] = prompt
        return await self.router.achat(request, provider=provider, fallback=fallback,
                                       operation="generate")

    async def embed(self, texts: str | Sequence[str], *, model: str | None = None,
                    provider: str | None = None) -> EmbeddingResponse:
        return await self.router.aembed([texts] if isinstance(texts, str) else list(texts),
                                        model=model, provider=provider)

    async def models(self, provider: str | None = None) -> list[ModelInfo]:
        return await self.router.amodels(provider)

    async def run_agent(self, agent: str, prompt: str, *,
                        cwd: str | os.PathLike[str] | None = None, mode: str | None = None,
                        model: str | None = None, resume: str | None = None,
                        timeout: float | None = None, args: Sequence[str] | None = None,
                        on_event: EventCallback | None = None) -> AgentResult:
        """Run an agent without blocking the loop; cancelling the task stops the agent."""
        import asyncio
        import contextlib
        import functools
        import threading

        a = self.runtime.agent(agent)
        task = self._task(a, prompt, cwd, mode, model, resume, timeout, args)
        cancel = threading.Event()
        fut = asyncio.get_running_loop().run_in_executor(
            None, functools.partial(self._agent_run, a, task, on_event, cancel))
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            # The runner sees the event, stops the agent's whole process group and returns;
            # wait for that so no process outlives the cancelled task.
            cancel.set()
            with contextlib.suppress(BaseException):
                await fut
            raise

    async def aclose(self) -> None:
        for p in self.runtime.providers.values():
            await p.aclose()
        self.router.close()
        self.runtime.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
