"""The model a provider serves when nobody named one: neither the request nor the config.

The rule (the same for every provider type, from what its ``models()`` reports):

1. a chat-capable model the server already holds in memory (Ollama's ``/api/ps``, LM
   Studio's ``state: loaded``): answering from it costs no load time; the largest if
   several;
2. else the provider's configured default (``default_model``) when the server has it;
3. else the largest chat-capable model (parameter count from the name or the server);
   an embedding-only model is never chosen for a chat.

The choice is cached per provider for ``ttl`` seconds (a failed listing for a few
seconds, so an unreachable server costs one refused connection, not one per request);
``Client.models(refresh=True)`` and a "model not found" from the server invalidate it.
"""

from __future__ import annotations

import re
import threading
import time
from typing import TYPE_CHECKING, Any

from ..registry import model_name, parameter_count

if TYPE_CHECKING:
    from ..provider import Provider
    from ..types import ModelInfo

_EMBED_CAPS = frozenset({"embedding", "embeddings", "embed"})
_CHAT_CAPS = frozenset({"completion", "chat", "llm", "vlm", "vision", "tools"})
_EMBED_NAME = re.compile(r"embed|(^|[/_-])(bge|e5|gte|minilm)([/_:-]|$)", re.IGNORECASE)


def chat_capable(info: ModelInfo) -> bool:
    """Can this model answer a chat? Embedding-only models cannot."""
    caps = {c.lower() for c in info.capabilities}
    if caps & _CHAT_CAPS:
        return True
    if caps and caps <= _EMBED_CAPS:
        return False
    kind = str(info.details.get("type", "")).lower() if info.details else ""
    if kind in ("embeddings", "embedding"):
        return False
    return not _EMBED_NAME.search(info.name)


def pick(models: list[ModelInfo], default: str | None, type_name: str) -> str | None:
    """The model the rule above picks from ``models``, or ``None`` when none can chat."""
    usable = [m for m in models if chat_capable(m)]
    if not usable:
        return None

    def size(m: ModelInfo) -> float:
        return parameter_count(m.parameter_size) or parameter_count(m.name) or 0.0

    loaded = [m for m in usable if m.loaded]
    if loaded:
        return max(loaded, key=size).name  # max keeps the first of equals: server order
    if default:
        want = model_name(default, type_name)
        for m in usable:
            if model_name(m.name, type_name) == want:
                return m.name
    return max(usable, key=size).name


class ModelChooser:
    """Caches each provider's automatic model choice."""

    def __init__(self, ttl: float = 300.0, failure_ttl: float = 5.0) -> None:
        self.ttl = ttl
        self.failure_ttl = failure_ttl
        self._lock = threading.Lock()
        # provider name → (monotonic expiry, chosen model or None, why not)
        self._cache: dict[str, tuple[float, str | None, BaseException | None]] = {}

    def choose(self, p: Provider) -> str | None:
        """The model to send to ``p`` when none is asked or configured (None: unknown)."""
        hit = self._cache.get(p.name)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            models = p.models()
        except Exception as exc:  # unreachable or no model list: the attempt says why
            self._remember(p.name, None, self.failure_ttl, exc)
            return None
        return self.learn(p, models)

    def fresh(self, name: str) -> bool:
        """Is there a cached choice (or failure) for provider ``name`` still in date?"""
        hit = self._cache.get(name)
        return hit is not None and hit[0] > time.monotonic()

    def learn(self, p: Provider, models: list[ModelInfo]) -> str | None:
        """Choose from a listing just fetched (``choose`` or ``Client.models``)."""
        default = _configured_default(p)
        chosen = pick(models, default, p.type_name)
        why = None
        # An empty list says nothing (a provider without a model list of its own): the
        # provider's own default applies. A list with no chat model is a clear failure.
        if not chosen and models:
            from ..errors import ModelNotFoundError

            names = ", ".join(m.name for m in models) or "none"
            why = ModelNotFoundError(
                f"{p.name}: no model was asked for or configured, and the server lists no "
                f"chat model (it has: {names})",
                provider=p.name,
                hint="pull or load a chat model on it (e.g. `ollama pull llama3.2`), or "
                "name one with model= or the provider's `models:`",
            )
        self._remember(p.name, chosen, self.ttl if chosen else self.failure_ttl, why)
        return chosen

    def failure(self, name: str) -> BaseException | None:
        """Why no model could be chosen for provider ``name`` (the listing's error)."""
        hit = self._cache.get(name)
        return hit[2] if hit and hit[1] is None else None

    def invalidate(self, name: str | None = None) -> None:
        with self._lock:
            if name is None:
                self._cache.clear()
            else:
                self._cache.pop(name, None)

    def _remember(
        self, name: str, model: str | None, ttl: float, why: BaseException | None
    ) -> None:
        with self._lock:
            self._cache[name] = (time.monotonic() + ttl, model, why)


def _configured_default(p: Any) -> str | None:
    """A default the plugin's options name (``default_model``), if any."""
    opts = getattr(p, "options", None)
    value = getattr(opts, "default_model", None) if opts is not None else None
    return value if isinstance(value, str) and value else None
