"""The ``ollama`` provider type: Ollama's native API, local or Ollama Cloud.

Pure wire code (:mod:`.wire` builds bodies and reads answers, :mod:`.errors` words the
failures); :class:`llmcore.Provider` does the I/O, sync and async, with llmcore's limits
and deadlines. Importing the plugin costs no HTTP stack.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import attrs
import llmcore
from llmcore import (
    AuthenticationError,
    ChatRequest,
    ChatResponse,
    ConfigError,
    EmbeddingResponse,
    Health,
    HTTPRequest,
    HTTPResponse,
    ModelInfo,
    ModelNotFoundError,
    NDJSONChunks,
    Provider,
    ProviderConnectionError,
    ProviderError,
    StreamChunk,
    Usage,
)

from . import errors, wire

log = logging.getLogger("llmcore_ollama")

#: ``progress(status, completed, total)``, called for every line of a pull.
Progress = Callable[[str, int | None, int | None], None]
T = TypeVar("T")

CLOUD_KEY_ENV = "OLLAMA_API_KEY"

#: Ollama's model options (its Modelfile PARAMETERs and runtime settings).
MODEL_OPTIONS = frozenset(
    {
        "numa",
        "num_ctx",
        "num_batch",
        "num_gpu",
        "main_gpu",
        "low_vram",
        "f16_kv",
        "logits_all",
        "vocab_only",
        "use_mmap",
        "use_mlock",
        "embedding_only",
        "num_thread",
        "num_keep",
        "seed",
        "num_predict",
        "top_k",
        "top_p",
        "min_p",
        "tfs_z",
        "typical_p",
        "repeat_last_n",
        "temperature",
        "repeat_penalty",
        "presence_penalty",
        "frequency_penalty",
        "mirostat",
        "mirostat_tau",
        "mirostat_eta",
        "penalize_newline",
        "stop",
    }
)


class OllamaProvider(Provider):
    """Ollama through ``/api/chat``, ``/api/generate``, ``/api/embed`` and friends."""

    type_name: ClassVar[str] = "ollama"
    default_base_url: ClassVar[str | None] = "http://localhost:11434"
    default_api_key_env: ClassVar[str | None] = None
    local: ClassVar[bool] = True
    start_hint: ClassVar[str] = (
        "start it with `ollama serve` (or open the Ollama app), "
        "or point base_url at the machine where it runs"
    )

    @attrs.define
    class Options:
        """Extra keys of an ``ollama`` provider section in ``llmcore.yaml``."""

        #: How long Ollama keeps the model in memory after a call ("5m", "1h", 0, -1).
        #: (``Any`` because cattrs cannot structure ``str | int``; checked in __init__.)
        keep_alive: Any = None
        #: Ollama model options sent with every call (num_ctx, temperature, ...).
        options: dict[str, Any] = attrs.field(factory=dict)
        #: Pull a model that is not there yet (then retry the call once).
        auto_pull: bool = False
        #: Ask thinking models to think (True/False); None leaves the model's default.
        think: bool | None = None
        #: The model ``embed`` uses when the call names none.
        embed_model: str | None = None
        #: Treat the server as Ollama Cloud (key required, no pulling); None: decided from
        #: base_url (ollama.com).
        cloud: bool | None = None

    def __init__(self, config: Any) -> None:
        super().__init__(_gather_model_options(config))
        keep = self.options.keep_alive
        if keep is not None and (isinstance(keep, bool) or not isinstance(keep, (str, int, float))):
            raise ConfigError(
                f"keep_alive must be a duration like '5m' or a number of seconds, not {keep!r}",
                path=f"providers.{self.name}.keep_alive",
                hint="e.g. keep_alive: 10m (or 0 to unload at once, -1 to keep)",
            )
        #: Set by a front end (the CLI) to show pull progress; default: log lines.
        self.pull_progress: Progress | None = None

    # -- configuration ---------------------------------------------------------------
    @property
    def cloud(self) -> bool:
        if self.options.cloud is not None:
            return bool(self.options.cloud)
        host = urlsplit(self.base_url or "").hostname or ""
        return host == "ollama.com" or host.endswith(".ollama.com")

    @property
    def api_key(self) -> str | None:
        cfg = self.config
        if self.cloud and not cfg.api_key_env and not cfg.api_key:
            import os

            key = os.environ.get(CLOUD_KEY_ENV)
            llmcore.register_secret(key)
            return key
        resolved: str | None = cfg.resolved_api_key()
        return resolved

    def request_headers(self) -> dict[str, str]:
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": "llmcore-ollama/0.1",
        }
        key = self.api_key
        if key:
            headers["Authorization"] = f"Bearer {key}"
        elif self.cloud:
            env = self.config.api_key_env or CLOUD_KEY_ENV
            raise AuthenticationError(
                f"{self.name}: Ollama Cloud needs an API key and none is set",
                provider=self.name,
                hint=f"export {env}=<key> (create one at {errors.CLOUD_KEYS_URL})",
            )
        return headers

    def _model(self, request: Any) -> str:
        return self.require_model(request)

    def _body_kw(self) -> dict[str, Any]:
        o = self.options
        return {"defaults": o.options, "keep_alive": o.keep_alive, "think": o.think}

    def _can_pull(self) -> bool:
        return bool(self.options.auto_pull) and not self.cloud

    # -- failures in Ollama's words ------------------------------------------------------
    def error_for_status(self, response: HTTPResponse, request: HTTPRequest) -> ProviderError:
        return errors.for_status(
            self.name,
            request.model,
            response.status,
            response.text(),
            response.headers,
            cloud=self.cloud,
            key_env=self.config.api_key_env or (CLOUD_KEY_ENV if self.cloud else None),
            retry_after_cap=self.limits.retry_after_cap,
        )

    def unreachable_error(
        self, url: str, detail: str, refused: bool = False
    ) -> ProviderConnectionError:
        return errors.not_reachable(
            self.name, self.base_url or url, detail, cloud=self.cloud, refused=refused
        )

    def decode(self, response: HTTPResponse, request: HTTPRequest) -> Any:
        """Ollama answers JSON objects; an ``{"error": ...}`` one is raised, even in a 200."""
        data = super().decode(response, request)
        return self._checked(data, request.model)

    def _checked(self, data: Any, model: str | None) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise errors.malformed(self.name, model, json.dumps(data))
        if data.get("error"):
            raise errors.in_stream(self.name, model, str(data["error"]), cloud=self.cloud)
        return data

    # -- requests and answers (pure) ---------------------------------------------------
    def chat_request(self, request: ChatRequest, stream: bool) -> HTTPRequest:
        model = self._model(request)
        return HTTPRequest(
            "POST",
            "/api/chat",
            model=model,
            timeout=request.timeout,
            json=wire.chat_body(request, model, stream, **self._body_kw()),
        )

    def parse_chat(self, data: Any, request: ChatRequest) -> ChatResponse:
        if not isinstance(data.get("message"), dict):
            raise self.answer_error(
                data, "message (an Ollama chat answer)", self.model_for(request)
            )
        return wire.chat_response(data, self.name, 0.0)

    def stream_decoder(self, request: ChatRequest) -> OllamaStream:
        return OllamaStream(self, self.model_for(request))

    def generate_request(self, request: ChatRequest) -> HTTPRequest:
        model = self._model(request)
        return HTTPRequest(
            "POST",
            "/api/generate",
            model=model,
            timeout=request.timeout,
            json=wire.generate_body(request, model, False, **self._body_kw()),
        )

    def parse_generate(self, data: Any, request: ChatRequest) -> ChatResponse:
        if not isinstance(data.get("response"), str):
            raise self.answer_error(
                data, "response (an Ollama completion)", self.model_for(request)
            )
        return wire.generate_response(data, self.name, 0.0)

    def embed_request(self, texts: list[str], model: str | None) -> HTTPRequest:
        name = self.require_model(
            model=model or self.options.embed_model,
            what="embedding model (pass model=, or set options.embed_model)",
        )
        body: dict[str, Any] = {"model": name, "input": list(texts)}
        if self.options.keep_alive is not None:
            body["keep_alive"] = self.options.keep_alive
        if self.options.options:
            body["options"] = dict(self.options.options)
        return HTTPRequest("POST", "/api/embed", json=body, model=name)

    def parse_embed(self, data: Any, texts: list[str], model: str | None) -> EmbeddingResponse:
        vectors = data.get("embeddings")
        name = data.get("model") or model or self.options.embed_model or self.default_model
        if not isinstance(vectors, list):
            raise self.answer_error(data, "embeddings", name)
        return EmbeddingResponse(
            vectors=vectors,
            model=name,
            provider=self.name,
            usage=Usage(input_tokens=llmcore.token_count(data.get("prompt_eval_count"))),
        )

    # -- the calls: the base's, plus auto_pull -----------------------------------------
    def _pulling(self, model: str, call: Callable[[], T]) -> T:
        """``call()``; with ``auto_pull``, a missing model is pulled and the call retried once."""
        try:
            return call()
        except ModelNotFoundError:
            if not self._can_pull():
                raise
        self.pull(model, self.pull_progress)
        return call()

    async def _apulling(self, model: str, call: Callable[[], Any]) -> Any:
        import asyncio

        try:
            return await call()
        except ModelNotFoundError:
            if not self._can_pull():
                raise
        await asyncio.to_thread(self.pull, model, self.pull_progress)
        return await call()

    def chat(self, request: ChatRequest) -> ChatResponse:
        return self._pulling(self._model(request), lambda: Provider.chat(self, request))

    async def achat(self, request: ChatRequest) -> ChatResponse:
        result: ChatResponse = await self._apulling(
            self._model(request), lambda: Provider.achat(self, request)
        )
        return result

    def generate(self, request: ChatRequest) -> ChatResponse:
        return self._pulling(self._model(request), lambda: Provider.generate(self, request))

    async def agenerate(self, request: ChatRequest) -> ChatResponse:
        result: ChatResponse = await self._apulling(
            self._model(request), lambda: Provider.agenerate(self, request)
        )
        return result

    def embed(self, texts: list[str], model: str | None = None) -> EmbeddingResponse:
        name = self.embed_request(texts, model).model or ""
        return self._pulling(name, lambda: Provider.embed(self, texts, name))

    async def aembed(self, texts: list[str], model: str | None = None) -> EmbeddingResponse:
        name = self.embed_request(texts, model).model or ""
        result: EmbeddingResponse = await self._apulling(
            name, lambda: Provider.aembed(self, texts, name)
        )
        return result

    def stream(self, request: ChatRequest) -> Iterator[StreamChunk]:
        model = self._model(request)
        started = False
        try:
            for chunk in Provider.stream(self, request):
                started = True
                yield chunk
            return
        except ModelNotFoundError:
            if started or not self._can_pull():
                raise
        self.pull(model, self.pull_progress)
        yield from Provider.stream(self, request)

    async def astream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        import asyncio

        model = self._model(request)
        started = False
        try:
            async for chunk in Provider.astream(self, request):
                started = True
                yield chunk
            return
        except ModelNotFoundError:
            if started or not self._can_pull():
                raise
        await asyncio.to_thread(self.pull, model, self.pull_progress)
        async for chunk in Provider.astream(self, request):
            yield chunk

    # -- models, pull, health ----------------------------------------------------------
    def models(self) -> list[ModelInfo]:
        """Every model Ollama has, with facts from ``/api/show`` (asked in parallel)."""
        from concurrent.futures import ThreadPoolExecutor

        tags = self.call(HTTPRequest("GET", "/api/tags")).get("models") or []
        if not isinstance(tags, list):
            raise self.answer_error({"models": tags}, "models[] (a model list)")
        loaded = self._loaded_names()

        def show(tag: dict[str, Any]) -> ModelInfo:
            name = str(tag.get("model") or tag.get("name"))
            try:
                facts: dict[str, Any] | None = self.show(name)
            except ProviderError as exc:  # one odd model must not hide the others
                log.debug("show %s failed: %s", name, exc)
                facts = None
            is_loaded = name in loaded if loaded is not None else None
            return wire.model_info(name, self.name, tag, facts, is_loaded)

        if not tags:
            return []
        with ThreadPoolExecutor(max_workers=min(8, len(tags))) as pool:
            return list(pool.map(show, tags))

    async def amodels(self) -> list[ModelInfo]:
        import asyncio

        return await asyncio.to_thread(self.models)

    def show(self, model: str) -> dict[str, Any]:
        """Ollama's raw ``/api/show`` answer for ``model``."""
        data: dict[str, Any] = self.call(
            HTTPRequest("POST", "/api/show", json={"model": model}, model=model)
        )
        return data

    def running(self) -> list[ModelInfo]:
        """The models Ollama holds in memory now (``/api/ps``)."""
        data = self.call(HTTPRequest("GET", "/api/ps"))
        out = []
        for m in data.get("models") or []:
            info = wire.model_info(str(m.get("model") or m.get("name")), self.name, m, None, True)
            info.context_length = m.get("context_length") or info.context_length
            info.details.update({k: m[k] for k in ("size_vram", "expires_at") if k in m})
            out.append(info)
        return out

    def _loaded_names(self) -> set[str] | None:
        try:
            return {m.name for m in self.running()}
        except ProviderError:  # Ollama Cloud and old servers have no /api/ps
            return None

    def pull(self, model: str, progress: Any = None) -> None:
        """Download ``model``; ``progress(status, completed, total)`` follows each step."""
        report: Progress = progress or _log_progress(model)
        req = HTTPRequest("POST", "/api/pull", json={"model": model, "stream": True}, model=model)
        lines = llmcore.NDJSONDecoder(self.limits.max_line_bytes)
        status = ""
        pieces = self.open_stream(req)
        try:
            for piece in pieces:
                for data in lines.feed(piece):
                    data = self._checked(data, model)
                    status = str(data.get("status") or "")
                    report(status, data.get("completed"), data.get("total"))
        finally:
            pieces.close()
        if status != "success":
            raise errors.cut(self.name, model, f"the pull stopped at {status!r}")

    def health(self) -> Health:
        import time

        t0 = time.monotonic()
        try:
            data = self.call(HTTPRequest("GET", "/api/version"))
        except ProviderError as exc:
            return Health(
                ok=False, latency_s=time.monotonic() - t0, detail=exc.message, hint=exc.hint
            )
        return Health(
            ok=True,
            latency_s=time.monotonic() - t0,
            version=str(data.get("version") or ""),
            detail=f"Ollama at {self.base_url}",
        )


class OllamaStream(NDJSONChunks):
    """The NDJSON objects of one /api/chat stream as StreamChunks; an ``error`` object is
    raised, and a stream that stops before ``done`` is a cut connection."""

    def __init__(self, provider: OllamaProvider, model: str | None) -> None:
        super().__init__(provider.limits.max_line_bytes)
        self.provider = provider
        self.model = model
        self.state = wire.StreamState(provider.name)

    def item(self, obj: Any) -> list[StreamChunk]:
        data = self.provider._checked(obj, self.model)
        chunk = self.state.chunk(data)
        self.done = self.state.done
        return [chunk]

    def finish(self) -> list[StreamChunk]:
        if not self.done:
            raise errors.cut(
                self.provider.name, self.model, "the stream ended before Ollama's final message"
            )
        return []


def _gather_model_options(config: Any) -> Any:
    """Move Ollama model options written among the section's keys into ``options``.

    llmcore gives a plugin the free keys of its section, and a YAML ``options: {num_ctx:
    8192}`` arrives flattened among them; so ``num_ctx`` is accepted there and at the top
    of the section alike. Any other unknown key is a config error that names it.
    """
    known = {f.name for f in attrs.fields(OllamaProvider.Options)}
    free = dict(config.options)
    model_options = dict(free.pop("options", None) or {})
    for key in list(free):
        if key in MODEL_OPTIONS:
            model_options[key] = free.pop(key)
        elif key not in known:
            raise ConfigError(
                f"unknown key {key!r} for an ollama provider",
                path=f"providers.{config.name or 'ollama'}.{key}",
                hint=f"plugin keys: {', '.join(sorted(known - {'options'}))}; Ollama model "
                "options (num_ctx, temperature, ...) go under options:",
            )
    free["options"] = model_options
    return attrs.evolve(config, options=free)


def _log_progress(model: str) -> Progress:
    """The default pull progress: one log line per status (not per byte)."""
    last = {"status": ""}

    def report(status: str, completed: int | None, total: int | None) -> None:
        if status != last["status"]:
            last["status"] = status
            log.info("pull %s: %s", model, status)

    return report
