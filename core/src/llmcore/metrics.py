"""Metrics events, the sink interface, and the dispatcher that hands events to sinks."""

from __future__ import annotations

import sys
import time
from typing import Any, ClassVar

import attrs

from .secrets import redact

#: Event kinds. ``request`` is one whole call as the caller saw it; ``attempt`` one try of
#: one candidate; the others mark what the router did.
KINDS = ("request", "attempt", "retry", "failover", "cooldown", "stream", "agent_run")


@attrs.define
class MetricsEvent:
    kind: str
    provider: str | None = None
    plugin: str | None = None
    model: str | None = None
    operation: str | None = None
    outcome: str = "ok"  # "ok" or the error class name
    status: int | None = None
    time: float = attrs.field(factory=time.time)
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost_usd: float | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    tokens_per_s: float | None = None
    attempt: int | None = None
    attempts: int | None = None
    request_id: str | None = None
    message: str | None = None
    cooldown_until: float | None = None
    agent: str | None = None
    duration_s: float | None = None
    files_changed: int | None = None
    session_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        if d.get("message"):
            d["message"] = redact(d["message"])
        return d


class MetricsSink:
    """Receives every event. Built from ``metrics.<type_name>`` options as a dict."""

    type_name: ClassVar[str] = ""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = options or {}

    def emit(self, event: MetricsEvent) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """Write out anything buffered."""

    def close(self) -> None:
        self.flush()


def builtin_sinks() -> list[type[MetricsSink]]:
    return []


class Metrics:
    """Delivers events to the hook and to every enabled sink; a failing sink is reported once."""

    def __init__(self, hook: Any, sinks: list[MetricsSink]) -> None:
        self._hook = hook
        self.sinks = sinks
        self._reported: set[str] = set()
        self._has_hook_impls = bool(hook.llmcore_metrics_event.get_hookimpls())

    def emit(self, event: MetricsEvent) -> None:
        if self._has_hook_impls:
            try:
                self._hook.llmcore_metrics_event(event=event)
            except Exception as exc:
                self._report("llmcore_metrics_event hook", exc)
        for sink in self.sinks:
            try:
                sink.emit(event)
            except Exception as exc:
                self._report(f"metrics sink {sink.type_name}", exc)

    def _report(self, who: str, exc: BaseException) -> None:
        if who not in self._reported:
            self._reported.add(who)
            print(f"llmcore: {who} failed and is ignored: {redact(str(exc))}", file=sys.stderr)

    def close(self) -> None:
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:
                self._report(f"metrics sink {sink.type_name}", exc)
