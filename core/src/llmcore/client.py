"""``Client`` and ``AsyncClient``: the public API."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any

import attrs

from .agent_dispatch import dispatch
from .agents import Agent, EventCallback
from .config import Config, load_config
from .conversation import AsyncConversation, Conversation
from .features import Features
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
        runtime: Runtime | None = None,
    ) -> None:
        if runtime is not None:
            if config is not None or plugin_manager is not None:
                raise TypeError(
                    "pass either runtime= or config=/plugin_manager=, not both: "
                    "a Runtime already holds its config and plugin manager"
                )
            self.runtime = runtime
        else:
            if config is None:
                config = Config(providers={}, agents={}) if providers or agents else load_config()
            self.runtime = Runtime(config, plugin_manager)
        self.runtime.validate()  # a wrong config fails here, not at the first request
        for p in providers or ():
            self.runtime.add_provider(p)
        for a in agents or ():
            self.runtime.agents[a.name] = a
        self.router = Router(self.runtime)
        self.features = Features(self)

    def _conversation_args(self, cid: str | None, kw: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments of a conversation; a known ``cid`` brings its logged history."""
        if cid is not None and "history" not in kw:
            from .promptlog import conversation_history, log_path

            kw["history"] = conversation_history(log_path(self.runtime.config), cid)
        return {"cid": cid, **kw}

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None) -> Any:
        """Build a client from ``llmcore.yaml`` (found the usual way when ``path`` is None)."""
        return cls(load_config(path))

    def _task(
        self,
        agent: Agent,
        prompt: str,
        cwd: str | os.PathLike[str] | None,
        mode: str | None,
        model: str | None,
        resume: str | None,
        timeout: float | None,
        args: Sequence[str] | None,
    ) -> AgentTask:
        cfg = agent.config
        return AgentTask(
            prompt=prompt,
            cwd=os.fspath(cwd) if cwd is not None else os.getcwd(),
            mode=mode or cfg.mode,
            model=model or cfg.model,
            resume=resume,
            timeout=timeout or cfg.timeout,
            args=[*cfg.args, *(args or [])],
        )

    def _plain(
        self, attachments: Any, conversation_id: str | None, log: bool | None, schema: Any = None
    ) -> bool:
        """No attachment, conversation, prompt log or schema: the router answers directly."""
        return (
            schema is None
            and not attachments
            and conversation_id is None
            and not self.features.logging(log)
        )

    def _agent_run(
        self, agent: Agent, task: AgentTask, on_event: EventCallback | None, cancel: Any = None
    ) -> AgentResult:
        rt = self.runtime
        return dispatch(rt.hooks, rt.metrics.emit, agent, task, on_event, cancel, config=rt.config)


class Client(_Base):
    """Synchronous client. Use as a context manager to close pooled connections."""

    def chat(
        self,
        messages: Messages,
        *,
        model: str | None = None,
        provider: str | None = None,
        system: str | None = None,
        fallback: bool | None = None,
        require: list[str] | None = None,
        min_context: int | None = None,
        schema: Any = None,
        attachments: Sequence[Any] | None = None,
        log: bool | None = None,
        schema_retries: int = 2,
        _conversation_id: str | None = None,
        **options: Any,
    ) -> Any:
        """Send a chat and return the whole answer; fails over per the routing config.

        ``require`` (capability tags such as ``vision``, ``tools``) and ``min_context``
        (tokens) keep only the models the registry says can serve the request.
        ``schema`` (a pydantic model, a dataclass or a JSON Schema dict) makes it return
        the parsed, validated object instead (asking again up to ``schema_retries`` times
        when the answer does not fit); ``attachments`` are image files, URLs or bytes;
        ``log`` logs this call (or not) whatever ``logs.enabled`` says."""
        request = build_request(messages, model, system, options)
        route: dict[str, Any] = dict(
            provider=provider, fallback=fallback, require=require, min_context=min_context
        )
        if self._plain(attachments, _conversation_id, log, schema):
            return self.router.chat(request, **route)
        return self.features.chat(
            request,
            route,
            schema=schema,
            attachments=attachments,
            log=log,
            conversation_id=_conversation_id,
            schema_retries=schema_retries,
        )

    def stream(
        self,
        messages: Messages,
        *,
        model: str | None = None,
        provider: str | None = None,
        system: str | None = None,
        fallback: bool | None = None,
        require: list[str] | None = None,
        min_context: int | None = None,
        attachments: Sequence[Any] | None = None,
        log: bool | None = None,
        _conversation_id: str | None = None,
        **options: Any,
    ) -> Iterator[StreamChunk]:
        """Yield the answer as it is generated."""
        request = build_request(messages, model, system, options)
        request.stream = True
        route: dict[str, Any] = dict(
            provider=provider, fallback=fallback, require=require, min_context=min_context
        )
        if self._plain(attachments, _conversation_id, log):
            return self.router.stream(request, **route)
        return self.features.stream(
            request,
            route,
            attachments=list(attachments or []),
            log=log,
            conversation_id=_conversation_id,
        )

    def conversation(self, cid: str | None = None, **kw: Any) -> Conversation:
        """A chat that keeps its history (``cid`` continues a logged conversation); the
        keyword arguments (model, provider, system, log, options) apply to every turn."""
        return Conversation(self, **self._conversation_args(cid, kw))

    def generate(
        self,
        prompt: str,
        *,
        model: str | None = None,
        provider: str | None = None,
        fallback: bool | None = None,
        **options: Any,
    ) -> ChatResponse:
        """A raw text completion (no chat template)."""
        request = build_request(prompt, model, None, options)
        request.extra["prompt"] = prompt
        return self.router.chat(request, provider=provider, fallback=fallback, operation="generate")

    def embed(
        self, texts: str | Sequence[str], *, model: str | None = None, provider: str | None = None
    ) -> EmbeddingResponse:
        return self.router.embed(
            [texts] if isinstance(texts, str) else list(texts), model=model, provider=provider
        )

    def models(self, provider: str | None = None, *, refresh: bool = False) -> list[ModelInfo]:
        """The models each provider serves; ``refresh`` also forgets the cached automatic
        model choices (made when neither the request nor the config names a model)."""
        return self.router.models(provider, refresh=refresh)

    def run_agent(
        self,
        agent: str | Sequence[str],
        prompt: str | None = None,
        *,
        cwd: str | os.PathLike[str] | None = None,
        mode: str | None = None,
        model: str | None = None,
        resume: str | None = None,
        timeout: float | None = None,
        args: Sequence[str] | None = None,
        on_event: EventCallback | None = None,
        prompt_file: str | os.PathLike[str] | None = None,
    ) -> AgentResult:
        """Run a coding agent on ``prompt`` (or the text of ``prompt_file``) in ``cwd`` and
        return what it did.

        ``agent`` may be several names (or one with ``agents.<name>.fallback``): the next
        is tried when one cannot work at all (see :mod:`llmcore.router.agent_chain`)."""
        from .router.agent_chain import chain_for, run_chain
        from .runner import resolve_prompt

        text = resolve_prompt(prompt, prompt_file)

        def one(a: Agent) -> AgentResult:
            task = self._task(a, text, cwd, mode, model, resume, timeout, args)
            return self._agent_run(a, task, on_event)

        return run_chain(self.runtime, chain_for(self.runtime, agent), one)

    # -- agent batches and worktree merges (issue 15) ----------------------------------
    def run_agents(
        self,
        tasks: Iterable[Any],
        *,
        parallel: int = 4,
        on_update: Callable[[Any], None] | None = None,
        on_finish: Callable[[Any], None] | None = None,
        cancel: Any = None,
    ) -> list[Any]:
        """Run many agent tasks, ``parallel`` at a time; a list of
        :class:`~llmcore.agent_batch.TaskOutcome` in task order. Each task is a
        :class:`~llmcore.agent_batch.BatchTask` or a mapping with its keys."""
        from .agent_batch import Batch

        return Batch(
            self, tasks, parallel=parallel, on_update=on_update, on_finish=on_finish, cancel=cancel
        ).run()

    def merge_run(self, run: AgentResult | str) -> Any:
        """Bring an isolated run's branch into its checkout (see
        :func:`llmcore.agent_worktrees.merge_run`)."""
        from .agent_worktrees import merge_run

        return merge_run(run)

    def close(self) -> None:
        self.features.close()
        self.router.close()
        self.runtime.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Base):
    """Asynchronous client; the same methods as :class:`Client`, awaitable."""

    async def chat(
        self,
        messages: Messages,
        *,
        model: str | None = None,
        provider: str | None = None,
        system: str | None = None,
        fallback: bool | None = None,
        require: list[str] | None = None,
        min_context: int | None = None,
        schema: Any = None,
        attachments: Sequence[Any] | None = None,
        log: bool | None = None,
        schema_retries: int = 2,
        _conversation_id: str | None = None,
        **options: Any,
    ) -> Any:
        request = build_request(messages, model, system, options)
        route: dict[str, Any] = dict(
            provider=provider, fallback=fallback, require=require, min_context=min_context
        )
        if self._plain(attachments, _conversation_id, log, schema):
            return await self.router.achat(request, **route)
        return await self.features.achat(
            request,
            route,
            schema=schema,
            attachments=attachments,
            log=log,
            conversation_id=_conversation_id,
            schema_retries=schema_retries,
        )

    def stream(
        self,
        messages: Messages,
        *,
        model: str | None = None,
        provider: str | None = None,
        system: str | None = None,
        fallback: bool | None = None,
        require: list[str] | None = None,
        min_context: int | None = None,
        attachments: Sequence[Any] | None = None,
        log: bool | None = None,
        _conversation_id: str | None = None,
        **options: Any,
    ) -> AsyncIterator[StreamChunk]:
        request = build_request(messages, model, system, options)
        request.stream = True
        route: dict[str, Any] = dict(
            provider=provider, fallback=fallback, require=require, min_context=min_context
        )
        if self._plain(attachments, _conversation_id, log):
            return self.router.astream(request, **route)
        return self.features.astream(
            request,
            route,
            attachments=list(attachments or []),
            log=log,
            conversation_id=_conversation_id,
        )

    def conversation(self, cid: str | None = None, **kw: Any) -> AsyncConversation:
        """The async :meth:`Client.conversation`."""
        return AsyncConversation(self, **self._conversation_args(cid, kw))

    async def generate(
        self,
        prompt: str,
        *,
        model: str | None = None,
        provider: str | None = None,
        fallback: bool | None = None,
        **options: Any,
    ) -> ChatResponse:
        request = build_request(prompt, model, None, options)
        request.extra["prompt"] = prompt
        return await self.router.achat(
            request, provider=provider, fallback=fallback, operation="generate"
        )

    async def embed(
        self, texts: str | Sequence[str], *, model: str | None = None, provider: str | None = None
    ) -> EmbeddingResponse:
        return await self.router.aembed(
            [texts] if isinstance(texts, str) else list(texts), model=model, provider=provider
        )

    async def models(
        self, provider: str | None = None, *, refresh: bool = False
    ) -> list[ModelInfo]:
        return await self.router.amodels(provider, refresh=refresh)

    async def run_agent(
        self,
        agent: str | Sequence[str],
        prompt: str | None = None,
        *,
        cwd: str | os.PathLike[str] | None = None,
        mode: str | None = None,
        model: str | None = None,
        resume: str | None = None,
        timeout: float | None = None,
        args: Sequence[str] | None = None,
        on_event: EventCallback | None = None,
        prompt_file: str | os.PathLike[str] | None = None,
    ) -> AgentResult:
        """Run an agent without blocking the loop; cancelling the task stops the agent."""
        import asyncio
        import contextlib
        import functools
        import threading

        from .router.agent_chain import chain_for, run_chain
        from .runner import resolve_prompt

        prompt = resolve_prompt(prompt, prompt_file)
        cancel = threading.Event()

        def one(a: Agent) -> AgentResult:
            task = self._task(a, prompt, cwd, mode, model, resume, timeout, args)
            return self._agent_run(a, task, on_event, cancel)

        names = chain_for(self.runtime, agent)
        fut = asyncio.get_running_loop().run_in_executor(
            None, functools.partial(run_chain, self.runtime, names, one)
        )
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            # The runner sees the event, stops the agent's whole process group and returns;
            # wait for that so no process outlives the cancelled task.
            cancel.set()
            with contextlib.suppress(BaseException):
                await fut
            raise

    # -- agent batches and worktree merges (issue 15) ----------------------------------
    async def run_agents(
        self,
        tasks: Iterable[Any],
        *,
        parallel: int = 4,
        on_update: Callable[[Any], None] | None = None,
        on_finish: Callable[[Any], None] | None = None,
    ) -> list[Any]:
        """:meth:`Client.run_agents` without blocking the loop; cancelling stops them all."""
        import asyncio
        import contextlib
        import threading

        from .agent_batch import Batch

        cancel = threading.Event()
        batch = Batch(
            self, tasks, parallel=parallel, on_update=on_update, on_finish=on_finish, cancel=cancel
        )
        fut = asyncio.get_running_loop().run_in_executor(None, batch.run)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            cancel.set()
            with contextlib.suppress(BaseException):
                await fut
            raise

    async def merge_run(self, run: AgentResult | str) -> Any:
        import asyncio

        from .agent_worktrees import merge_run

        return await asyncio.to_thread(merge_run, run)

    async def aclose(self) -> None:
        for p in self.runtime.built_providers():
            await p.aclose()
        self.features.close()
        self.router.close()
        self.runtime.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
