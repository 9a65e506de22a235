"""llmcore-plugin-cache: an exact-match response cache, built only on llmcore's public hooks.

* ``llmcore_generate`` (two implementations): ``answer`` (tryfirst) returns a stored answer
  without calling the provider; ``store`` (a wrapper around every implementation) stores
  what the provider answered. A stream is stored piece by piece and replayed as a stream; a
  chat can be answered from a stored stream and the other way round.
* ``llmcore_config_sections`` declares the ``cache:`` section of ``llmcore.yaml``.
* ``llmcore_plugin_active`` says the plugin is off under a config without that section (or
  with ``enabled: false``): its ``llmcore_generate`` implementations are then not called,
  nor wrapped around the provider call, so an installed but unused cache costs nothing.
* ``llmcore_register_commands`` adds ``llmcore cache stats|clear``.

The cache is on when ``llmcore.yaml`` has a ``cache:`` section (``cache: {}`` takes every
default). What is cached: chat and stream requests whose answer completed (errors and broken streams
never are), keyed on the normalised request (messages, model, options; the provider too with
``per_provider: true``). Requests with ``temperature > 0`` are sampled on purpose, so they
are not cached unless ``cache_sampled: true``.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import llmcore

from .cache import (
    CacheOptions,
    cache_for,
    cacheable,
    entry_of,
    key_of,
    options_of,
    replay,
    replay_async,
    response_of,
    stored_stream,
    stored_stream_async,
)

LLMCORE_HOOK_API = ">=1.1,<2"  # llmcore_plugin_active came in 1.1
hookimpl = llmcore.hookimpl
__all__ = ["CacheOptions"]

#: The calls ``answer`` answered, by id: ``store`` leaves their results alone.
_HITS: set[int] = set()


@hookimpl
def llmcore_config_sections() -> list[tuple[str, type]]:
    return [("cache", CacheOptions)]


@hookimpl
def llmcore_plugin_active(config: Any) -> bool:
    """On only with a ``cache:`` section that is not ``enabled: false``."""
    return options_of(config).enabled


@hookimpl(tryfirst=True, specname="llmcore_generate")
def answer(call: Any) -> Any:
    """Answer from the cache when the same request was answered before."""
    opts, store = cache_for(call.config)
    if store is None or not cacheable(call, opts):
        return None
    hit = store.get(key_of(call, opts))
    if hit is None:
        return None
    _HITS.add(id(call))
    if call.emit is not None:
        usage = hit.get("usage") or {}
        call.emit(
            llmcore.MetricsEvent(
                kind="cache_hit",
                provider=call.provider.name,
                plugin=call.provider.type_name,
                model=hit.get("model") or call.request.model,
                operation=call.operation,
                input_tokens=usage.get("input_tokens"),
                output_tokens=usage.get("output_tokens"),
                message=f"answered from the {store.kind} cache",
            )
        )
    if call.operation == "stream":
        return replay_async(hit, call) if call.is_async else replay(hit, call)
    resp = response_of(hit, call)
    if call.is_async:

        async def ready() -> Any:
            return resp

        return ready()
    return resp


@hookimpl(wrapper=True, specname="llmcore_generate")
def store(call: Any) -> Generator[None, Any, Any]:
    """Store what the provider answered (never an error: it passes through the ``yield``)."""
    result = yield
    if id(call) in _HITS:
        _HITS.discard(id(call))
        return result
    opts, cache = cache_for(call.config)
    if cache is None or result is None or not cacheable(call, opts):
        return result
    key = key_of(call, opts)
    if call.operation == "stream":
        if call.is_async:
            return stored_stream_async(result, lambda e: cache.put(key, e))
        return stored_stream(result, lambda e: cache.put(key, e))
    if call.is_async:

        async def stored() -> Any:
            resp = await result
            cache.put(key, entry_of(resp))
            return resp

        return stored()
    cache.put(key, entry_of(result))
    return result


@hookimpl
def llmcore_register_commands(cli: Any) -> None:
    from .commands import register

    register(cli)
