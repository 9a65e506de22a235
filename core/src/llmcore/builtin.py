"""What the core itself offers through the hooks: the ``openai`` provider type, the sinks, and
the per-provider shape of structured output and images."""

from __future__ import annotations

from typing import Any

from .hookspecs import hookimpl

#: Provider types whose requests need reshaping: Ollama takes images as bare base64,
#: Anthropic takes a schema as a forced tool call (see attachments.py, structured.py).
_RESHAPED = frozenset({"ollama", "anthropic"})


class BuiltinPlugin:
    @hookimpl
    def llmcore_register_providers(self) -> list[Any]:
        from .openai_compat import OpenAIProvider

        return [OpenAIProvider]

    @hookimpl
    def llmcore_register_metrics_sinks(self) -> list[Any]:
        # The sinks the core ships (their modules import their heavy libraries lazily).
        from .sinks.jsonl import JsonlSink
        from .sinks.log import LogSink
        from .sinks.prometheus import PrometheusSink
        from .sinks.sqlite import SqliteSink

        return [SqliteSink, JsonlSink, PrometheusSink, LogSink]

    @hookimpl
    def llmcore_generate(self, call: Any) -> Any:
        # Registered before any installed plugin, so pluggy calls it after every plugin's
        # implementation (a cache keys on the request as the caller built it) and before
        # the core's trylast one, which calls the provider. The
        # request is replaced by a reshaped copy, never changed in place: the next
        # candidate of a failover may be of another type.
        if (
            call.operation in ("chat", "stream")
            and getattr(call.provider, "type_name", "") in _RESHAPED
        ):
            from . import attachments, structured

            req = structured.for_provider(call.request, call.provider.type_name)
            if call.provider.type_name == "ollama":
                req = attachments.for_ollama(req)
            call.request = req
        return None
