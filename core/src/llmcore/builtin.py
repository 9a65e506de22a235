"""What the core itself offers through the hooks: the ``openai`` provider type and the sinks."""

from __future__ import annotations

from typing import Any

from .hookspecs import hookimpl


class BuiltinPlugin:
    @hookimpl
    def llmcore_register_providers(self) -> list[Any]:
        from .openai_compat import OpenAIProvider

        return [OpenAIProvider]

    @hookimpl
    def llmcore_register_metrics_sinks(self) -> list[Any]:
        from .metrics import builtin_sinks

        return builtin_sinks()
