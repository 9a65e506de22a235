"""The ``ollama`` provider type: Ollama's native API, local or Ollama Cloud.

Sync calls go through one pooled ``httpx.Client`` per provider instance (here); async
calls through one ``aiohttp.ClientSession`` per instance and event loop (:mod:`.aio`).
Both are created on first use, so importing the plugin costs no HTTP stack.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar
from urllib.parse import urlsplit

import attrs
from llmcore import (
    AuthenticationError,
    BadRequestError,
    ChatRequest,
    ChatResponse,
    ConfigError,
    EmbeddingResponse,
    Health,
    ModelInfo,
    ModelNotFoundError,
    Provider,
    ProviderError,
    StreamChunk,
    Usage,
)

from . import errors, wire
from .aio import AsyncCalls

log = logging.getLogger("llmcore_ollama")

#: ``progress(status, completed, total)``, called for every line of a pull.
Progress = Callable[[str, int | None, int | None], None]

CLOUD_KEY_ENV = "OLLAMA_API_KEY"

#: Ollama's model options (its Modelfile PARAMETERs and runtime settings).
MODEL_OPTIONS = frozenset({
    "numa", "num_ctx", "num_batch", "num_gpu", "main_gpu", "low_vram", "f16_kv",
    "logits_all", "vocab_only", "use_mmap", "use_mlock", "embedding_only", "num_thread",
    "num_keep", "seed", "num_predict", "top_k", "top_p", "min_p", "tfs_z", "typical_p",
    "repeat_last_n", "temperature", "repeat_penalty", "presence_penalty",
    "frequency_penalty", "mirostat", "mirostat_tau", "mirostat_eta", "penalize_newline",
    "stop",
})


class OllamaProvider(AsyncCalls, Provider):
    """Ollama through ``/api/chat``, ``/api/generate``, ``/api/embed`` and friends."""

    type_name: ClassVar[str] = "ollama"
    default_base_url: ClassVar[str | None] = "http://localhost:11434"
    default_api_key_env: ClassVar[str | None] = None
    local: ClassVar[bool] = True

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
        if keep is not None and (isinstance(keep, bool)
                                 or not isinstance(keep, (str, int, float))):
            raise ConfigError(f"keep_alive must be a duration like '5m' or a number of "
                              f"seconds, not {keep!r}",
                              path=f"providers.{self.name}.keep_alive",
                              hint="e.g. keep_alive: 10m (or 0 to unload at once, -1 to keep)")
        self._lock = threading.Lock()
        self._client: Any = None
        self._session: Any = None
        self._session_loop: Any = None
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

            from llmcore import register_secret

            key = os.environ.get(CLOUD_KEY_ENV)
            register_secret(key)
            return key
        resolved: str | None = cfg.resolved_api_key()
        return resolved

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "Content-Type": "application/json",
                   "User-Agent": "llmcore-ollama/0.1"}
        key = self.api_key
        if key:
            headers["Authorization"] = f"Bearer {key}"
        elif self.cloud:
            env = self.config.api_key_env or CLOUD_KEY_ENV
            raise AuthenticationError(
                f"{self.name}: Ollama Cloud needs an API key and none is set",
                provider=self.name,
                hint=f"export {env}=<key> (create one at {errors.CLOUD_KEYS_URL})")
        return headers

    def _model(self, request: Any) -> str:
        model = self.model_for(request)
        if not model:
            raise BadRequestError(f"{self.name}: no model given", provider=self.name,
                                  hint="pass a model, or list one under `models:` in the "
                                       "provider's config")
        return str(model)

    def _body_kw(self) -> dict[str, Any]:
        o = self.options
        return {"defaults": o.options, "keep_alive": o.keep_alive, "think": o.think}

    def _can_pull(self) -> bool:
        return bool(self.options.auto_pull) and not self.cloud

    def _error(self, model: str | None, status: int, body: str, headers: Any) -> ProviderError:
        return errors.for_status(self.name, model, status, body, headers, cloud=self.cloud,
                                 key_env=self.config.api_key_env
                                 or (CLOUD_KEY_ENV if self.cloud else None))

    # -- sync transport (httpx) --------------------------------------------------------
    @property
    def http(self) -> Any:
        """The pooled httpx client, made on first use."""
        if self._client is None:
            headers = self._headers()
            with self._lock:
                if self._client is None:
                    import httpx

                    t = self.config.timeout
                    self._client = httpx.Client(
                        base_url=self.base_url or "", headers=headers,
                        timeout=httpx.Timeout(connect=t.connect, read=t.read, write=t.write,
                                              pool=t.pool))
        return self._client

    def _timeout(self, request_timeout: float | None) -> Any:
        if request_timeout is None:
            return None
        import httpx

        t = self.config.timeout
        return httpx.Timeout(connect=t.connect, read=request_timeout, write=t.write,
                             pool=t.pool)

    def _send(self, method: str, path: str, body: dict[str, Any] | None = None, *,
              model: str | None = None, stream: bool = False,
              timeout: float | None = None) -> Any:
        import httpx

        client = self.http
        try:
            extra = {"timeout": self._timeout(timeout)} if timeout is not None else {}
            content = json.dumps(body).encode() if body is not None else None
            req = client.build_request(method, path, content=content, **extra)
            resp = client.send(req, stream=stream)
        except httpx.TimeoutException as exc:
            raise self._timeout_error(exc, model, timeout) from None
        except httpx.ConnectError as exc:
            raise errors.not_reachable(self.name, self.base_url or "", str(exc),
                                       cloud=self.cloud, refused=True) from None
        except httpx.TransportError as exc:
            raise errors.cut(self.name, model, str(exc) or type(exc).__name__) from None
        if resp.status_code >= 400:
            try:
                text = resp.read().decode("utf-8", "replace")
            except httpx.HTTPError:
                text = ""
            finally:
                resp.close()
            raise self._error(model, resp.status_code, text, resp.headers)
        return resp

    def _timeout_error(self, exc: Any, model: str | None, request_timeout: float | None,
                       ) -> ProviderError:
        name = type(exc).__name__.lower()
        phase = next((p for p in ("connect", "write", "pool") if p in name), "read")
        t = self.config.timeout
        seconds = request_timeout if phase == "read" and request_timeout else getattr(t, phase)
        return errors.timed_out(self.name, model, phase, seconds)

    def _json(self, resp: Any, model: str | None) -> dict[str, Any]:
        import httpx

        try:
            raw = resp.read()
        except httpx.TimeoutException as exc:
            raise self._timeout_error(exc, model, None) from None
        except httpx.TransportError as exc:
            raise errors.cut(self.name, model, str(exc)) from None
        finally:
            resp.close()
        return self._decode(raw, model)

    def _decode(self, raw: bytes, model: str | None) -> dict[str, Any]:
        try:
            data = json.loads(raw)
        except ValueError:
            raise errors.malformed(self.name, model, raw.decode("utf-8", "replace")) from None
        if not isinstance(data, dict):
            raise errors.malformed(self.name, model, raw.decode("utf-8", "replace"))
        if isinstance(data.get("error"), str):
            raise errors.in_stream(self.name, model, data["error"], cloud=self.cloud)
        return data

    def _lines(self, resp: Any, model: str | None) -> Iterator[dict[str, Any]]:
        """The objects of an NDJSON stream; an ``error`` object is raised, never yielded."""
        import httpx

        try:
            for line in resp.iter_lines():
                if line.strip():
                    yield self._decode(line.encode(), model)
        except httpx.TimeoutException as exc:
            raise self._timeout_error(exc, model, None) from None
        except httpx.TransportError as exc:
            raise errors.cut(self.name, model, str(exc) or type(exc).__name__) from None
        finally:
            resp.close()

    def _pulling(self, model: str, call: Callable[[], Any]) -> Any:
        """``call()``; with ``auto_pull``, a missing model is pulled and the call retried once."""
        try:
            return call()
        except ModelNotFoundError:
            if not self._can_pull():
                raise
        self.pull(model, self.pull_progress)
        return call()

    # -- the calls ---------------------------------------------------------------------
    def chat(self, request: ChatRequest) -> ChatResponse:
        model = self._model(request)
        body = wire.chat_body(request, model, False, **self._body_kw())

        def once() -> ChatResponse:
            t0 = time.monotonic()
            resp = self._send("POST", "/api/chat", body, model=model, timeout=request.timeout)
            data = self._json(resp, model)
            return wire.chat_response(data, self.name, time.monotonic() - t0)

        result: ChatResponse = self._pulling(model, once)
        return result

    def stream(self, request: ChatRequest) -> Iterator[StreamChunk]:
        model = self._model(request)
        body = wire.chat_body(request, model, True, **self._body_kw())
        resp = self._pulling(model, lambda: self._send("POST", "/api/chat", body, model=model,
                                                       stream=True, timeout=request.timeout))
        state = wire.StreamState(self.name)
        for data in self._lines(resp, model):
            yield state.chunk(data)
            if state.done:
                return
        raise errors.cut(self.name, model, "the stream ended before Ollama's final message")

    def generate(self, request: ChatRequest) -> ChatResponse:
        model = self._model(request)
        body = wire.generate_body(request, model, False, **self._body_kw())

        def once() -> ChatResponse:
            t0 = time.monotonic()
            resp = self._send("POST", "/api/generate", body, model=model,
                              timeout=request.timeout)
            return wire.generate_response(self._json(resp, model), self.name,
                                          time.monotonic() - t0)

        result: ChatResponse = self._pulling(model, once)
        return result

    def embed(self, texts: list[str], model: str | None = None) -> EmbeddingResponse:
        name = model or self.options.embed_model or self.default_model
        if not name:
            raise BadRequestError(f"{self.name}: no embedding model given", provider=self.name,
                                  hint="pass model=, or set options.embed_model")
        body = self._embed_body(texts, name)

        def once() -> EmbeddingResponse:
            data = self._json(self._send("POST", "/api/embed", body, model=name), name)
            return self._embedding(data, name)

        result: EmbeddingResponse = self._pulling(name, once)
        return result

    def _embed_body(self, texts: list[str], model: str) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "input": list(texts)}
        if self.options.keep_alive is not None:
            body["keep_alive"] = self.options.keep_alive
        if self.options.options:
            body["options"] = dict(self.options.options)
        return body

    def _embedding(self, data: dict[str, Any], model: str) -> EmbeddingResponse:
        vectors = data.get("embeddings")
        if not isinstance(vectors, list):
            raise errors.malformed(self.name, model, json.dumps(data))
        return EmbeddingResponse(vectors=vectors, model=data.get("model") or model,
                                 provider=self.name,
                                 usage=Usage(input_tokens=int(data.get("prompt_eval_count")
                                                              or 0)))

    # -- models, pull, health ----------------------------------------------------------
    def models(self) -> list[ModelInfo]:
        """Every model Ollama has, with facts from ``/api/show`` (asked in parallel)."""
        from concurrent.futures import ThreadPoolExecutor

        tags = self._json(self._send("GET", "/api/tags"), None).get("models") or []
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

    def show(self, model: str) -> dict[str, Any]:
        """Ollama's raw ``/api/show`` answer for ``model``."""
        return self._json(self._send("POST", "/api/show", {"model": model}, model=model), model)

    def running(self) -> list[ModelInfo]:
        """The models Ollama holds in memory now (``/api/ps``)."""
        data = self._json(self._send("GET", "/api/ps"), None)
        out = []
        for m in data.get("models") or []:
            info = wire.model_info(str(m.get("model") or m.get("name")), self.name, m, None,
                                   True)
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
        resp = self._send("POST", "/api/pull", {"model": model, "stream": True}, model=model,
                          stream=True)
        status = ""
        for data in self._lines(resp, model):
            status = str(data.get("status") or "")
            report(status, data.get("completed"), data.get("total"))
        if status != "success":
            raise errors.cut(self.name, model, f"the pull stopped at {status!r}")

    def health(self) -> Health:
        t0 = time.monotonic()
        try:
            data = self._json(self._send("GET", "/api/version"), None)
        except ProviderError as exc:
            return Health(ok=False, latency_s=time.monotonic() - t0, detail=exc.message,
                          hint=exc.hint)
        return Health(ok=True, latency_s=time.monotonic() - t0,
                      version=str(data.get("version") or ""),
                      detail=f"Ollama at {self.base_url}")

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
        session, self._session = self._session, None
        if session is not None and not session.closed:
            loop = self._session_loop
            if loop is not None and not loop.is_closed() and not loop.is_running():
                loop.run_until_complete(session.close())
            else:
                # Its event loop is gone (asyncio.run ended without aclose): the sockets
                # died with it, so only the bookkeeping is left to drop.
                connector = session.connector
                session.detach()
                if connector is not None:
                    connector._close()  # sync part of close(); no loop needed


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
                     "options (num_ctx, temperature, ...) go under options:")
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
