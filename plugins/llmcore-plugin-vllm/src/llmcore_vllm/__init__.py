"""llmcore plugin: vLLM servers (one or several replicas), OpenAI-compatible plus vLLM's extras.

Calls go through the core OpenAI-compatible client; this module adds what vLLM serves
besides: ``/health``, ``max_model_len`` in ``/v1/models``, ``/metrics`` (load),
``/tokenize``, several replicas (``base_urls``) chosen least busy first, and batches.
vLLM's own sampling and structured-output parameters (``top_k``, ``min_p``,
``repetition_penalty``, ``guided_json``, ``structured_outputs``, …) are plain request
options: ``client.chat(..., top_k=20)`` sends them untouched.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import llmcore
from llmcore import OpenAIProvider

from .replicas import Replica, ReplicaSet, parse_metrics

LLMCORE_HOOK_API = "1"

__all__ = ["Replica", "VLLMOptions", "VLLMProvider", "parse_metrics"]


@attrs.define
class VLLMOptions:
    """Extra config keys of the ``vllm`` type (besides the core provider keys)."""

    #: Ask for usage at the end of streams (vLLM supports ``stream_options``).
    stream_usage: bool = True
    #: Extra HTTP headers for every request.
    headers: dict[str, str] = attrs.field(factory=dict)
    #: Keys merged into every request body, e.g. ``{top_k: 20, min_p: 0.05}``.
    extra_body: dict[str, Any] = attrs.field(factory=dict)
    #: Most connections kept open per pool.
    max_connections: int = 100
    #: Seconds a replica that failed (connection error, failing ``/health``) is skipped;
    #: after that its ``/health`` is probed and it is used again once it answers.
    recheck_after: float = 5.0
    #: Seconds ``/metrics`` numbers are trusted when choosing the least busy replica;
    #: 0 chooses by this process's in-flight requests only (no ``/metrics`` calls).
    metrics_ttl: float = 2.0
    #: Default concurrency limit of :meth:`VLLMProvider.chat_batch`.
    batch_concurrency: int = 8


class VLLMProvider(OpenAIProvider):
    """A vLLM OpenAI-compatible server, or several replicas of one (``base_urls``)."""

    type_name: ClassVar[str] = "vllm"
    default_base_url: ClassVar[str | None] = "http://localhost:8000/v1"
    default_api_key_env: ClassVar[str | None] = None
    local: ClassVar[bool] = True
    Options: ClassVar[type | None] = VLLMOptions
    start_hint: ClassVar[str] = (
        "start it with `vllm serve MODEL` (default port 8000), or fix base_url/base_urls"
    )

    # -- where a call goes: a replica set (the least busy healthy replica; a call that
    # cannot connect fails over to the next one before anything reached a server) -------
    def endpoint(self) -> ReplicaSet:
        urls = list(self.config.base_urls or []) or [self.base_url or ""]
        return ReplicaSet(self, urls)

    @property
    def replicas(self) -> ReplicaSet:
        rs = self.endpoints
        assert isinstance(rs, ReplicaSet)
        return rs

    # -- vLLM's extras -----------------------------------------------------------------
    def health(self) -> llmcore.Health:
        """Probe ``/health`` (and ``/version``) of every replica; ok when one answers."""
        import time

        t0 = time.monotonic()
        results = self.replicas.check()
        ok = [r for r in results if r.up]
        version = None
        if ok:
            try:
                version = self.call(
                    llmcore.HTTPRequest("GET", "/version", root=True), base=ok[0].url
                ).get("version")
            except llmcore.ProviderError:
                version = None
        detail = (
            f"{len(ok)}/{len(results)} replica(s) healthy"
            if len(results) > 1
            else ("healthy" if ok else results[0].last_error or "unhealthy")
        )
        return llmcore.Health(
            ok=bool(ok),
            latency_s=time.monotonic() - t0,
            version=version,
            detail=detail,
            hint=None if ok else self.start_hint,
        )

    def load(self) -> float | None:
        """Requests running + waiting over every replica, from ``/metrics``."""
        self.replicas.refresh(force_metrics=True)
        loads = [r.server_load for r in self.replicas.all if r.server_load is not None]
        return float(sum(loads)) if loads else None

    def tokenize(self, text: str, model: str | None = None) -> list[int]:
        """Token ids of ``text`` as the served model's tokenizer sees it (``/tokenize``)."""
        name = self.require_model(model=model)
        data = self.call(
            llmcore.HTTPRequest(
                "POST", "/tokenize", root=True, model=name, json={"model": name, "prompt": text}
            ),
            base=self.replicas.any_up().url,
        )
        try:
            return [int(t) for t in data["tokens"]]
        except (KeyError, TypeError, ValueError):
            raise self.answer_error(data, "tokens", name) from None

    # -- batches -----------------------------------------------------------------------
    def batch_generate(
        self, prompts: list[str], model: str | None = None, **options: Any
    ) -> list[llmcore.ChatResponse]:
        """Complete every prompt in ONE ``/v1/completions`` request (vLLM batches them).

        Returns one response per prompt (per prompt times ``n`` when ``n`` is given), in
        order. The usage of the whole request is on the first response.
        """
        import time

        t0 = time.monotonic()
        data = self.call(self._batch_request(prompts, model, options))
        return self.parse_completion(data, time.monotonic() - t0)

    async def abatch_generate(
        self, prompts: list[str], model: str | None = None, **options: Any
    ) -> list[llmcore.ChatResponse]:
        import time

        t0 = time.monotonic()
        data = await self.acall(self._batch_request(prompts, model, options))
        return self.parse_completion(data, time.monotonic() - t0)

    def _batch_request(
        self, prompts: list[str], model: str | None, options: dict[str, Any]
    ) -> llmcore.HTTPRequest:
        if isinstance(prompts, str) or not prompts:
            raise TypeError("batch_generate takes a non-empty list of prompt strings")
        name = self.require_model(model=model)
        body: dict[str, Any] = {"model": name, "prompt": list(prompts)}
        body.update(self.options.extra_body)
        body.update(options)
        return llmcore.HTTPRequest("POST", "/completions", json=body, model=name)

    def chat_batch(
        self,
        items: list[Any],
        model: str | None = None,
        concurrency: int | None = None,
        **options: Any,
    ) -> list[llmcore.ChatResponse]:
        """Send many chats at once, at most ``concurrency`` in flight (threads).

        ``items`` are prompts or message lists. Results come back in order; the first
        failure is raised once every call has finished. Calls go straight to this provider
        (no routing, hooks or metrics): use ``Client.chat`` for those.
        """
        from concurrent.futures import ThreadPoolExecutor

        requests = [_request(item, model, options) for item in items]
        limit = max(1, concurrency or self.options.batch_concurrency)
        with ThreadPoolExecutor(max_workers=min(limit, len(requests) or 1)) as pool:
            futures = [pool.submit(self.chat, r) for r in requests]
        return [f.result() for f in futures]

    async def achat_batch(
        self,
        items: list[Any],
        model: str | None = None,
        concurrency: int | None = None,
        **options: Any,
    ) -> list[llmcore.ChatResponse]:
        """The async :meth:`chat_batch`: a semaphore keeps ``concurrency`` in flight."""
        import asyncio

        sem = asyncio.Semaphore(max(1, concurrency or self.options.batch_concurrency))

        async def one(req: llmcore.ChatRequest) -> llmcore.ChatResponse:
            async with sem:
                return await self.achat(req)

        return list(await asyncio.gather(*(one(_request(i, model, options)) for i in items)))


_REQUEST_KEYS = frozenset(attrs.fields_dict(llmcore.ChatRequest)) - {"messages", "model", "extra"}


def _request(item: Any, model: str | None, options: dict[str, Any]) -> llmcore.ChatRequest:
    if isinstance(item, str):
        messages = [llmcore.Message("user", item)]
    elif isinstance(item, list):
        messages = [m if isinstance(m, llmcore.Message) else llmcore.Message(**m) for m in item]
    else:
        raise TypeError(
            f"a batch item is a prompt or a list of messages, not {type(item).__name__}"
        )
    known = {k: v for k, v in options.items() if k in _REQUEST_KEYS}
    extra = {k: v for k, v in options.items() if k not in _REQUEST_KEYS}
    return llmcore.ChatRequest(messages=messages, model=model, extra=extra, **known)


@llmcore.hookimpl
def llmcore_register_providers() -> list[Any]:
    return [VLLMProvider]
