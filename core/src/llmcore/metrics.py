"""Metrics events, the sink interface, and the dispatcher that hands events to sinks.

The built-in sinks live in :mod:`llmcore.sinks` (``sqlite``, ``jsonl``, ``prometheus``,
``log``); third-party sinks come through the ``llmcore_register_metrics_sinks`` hook. A sink
is built from ``metrics.<type_name>`` in ``llmcore.yaml`` (``metrics.options[name]`` after
parsing); its ``Options`` attrs class, when it has one, checks those keys.
"""

from __future__ import annotations

import sys
import threading
import time
from asyncio import AbstractEventLoop, _get_running_loop
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from .secrets import redact

if TYPE_CHECKING:
    from .hooks import Hooks

#: Event kinds. ``request`` is one whole call as the caller saw it; ``attempt`` one try of
#: one candidate; ``cache_hit`` a request a cache plugin answered; ``refused`` a gateway
#: request turned away before routing (key, limit, bad body); the others mark what the
#: router did.
KINDS = (
    "request",
    "attempt",
    "retry",
    "failover",
    "cooldown",
    "stream",
    "agent_run",
    "cache_hit",
    "refused",
)


def counts_as_spend(kind: str | None, request_id: str | None) -> bool:
    """Is an event of ``kind`` one whose cost sums count? ``request`` events, and agent
    runs started directly (a routed run's cost is on its request's ``request`` event)."""
    return kind == "request" or (kind == "agent_run" and not request_id)


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
    #: The name (never the secret) of the ``serve.keys`` entry a gateway request came with.
    key_name: str | None = None

    def get(self, name: str, default: Any = None) -> Any:
        """A field by name, as ``to_dict().get(name)`` reads it (the message not redacted),
        without building the dict: for sinks that read a few fields of every event."""
        return getattr(self, name, default)

    def to_dict(self) -> dict[str, Any]:
        """Every field by name (the message redacted), for sinks that write dicts."""
        # Fields are flat values, so reading them is what attrs.asdict does, at a
        # fraction of its cost (it runs on the request path of the jsonl and log sinks).
        names = _NAMES.get(type(self))
        if names is None:
            names = _NAMES[type(self)] = tuple(a.name for a in attrs.fields(type(self)))
        d = {n: getattr(self, n) for n in names}
        if d.get("message"):
            d["message"] = redact(d["message"])
        return d


_NAMES: dict[type, tuple[str, ...]] = {}


#: The columns every sink can rely on, in a stable order (the SQLite schema, CSV exports).
FIELDS: tuple[str, ...] = tuple(a.name for a in attrs.fields(MetricsEvent))


class MetricsSink:
    """Receives every event. Built from ``metrics.<type_name>`` options as a dict.

    Subclasses set ``type_name``, optionally an attrs ``Options`` class (then ``self.opts``
    holds the checked options), and implement :meth:`emit`. ``emit`` runs on the request
    path: do slow work (disk, network) elsewhere or keep it tiny.
    """

    type_name: ClassVar[str] = ""
    Options: ClassVar[type | None] = None

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        from .config import parse_sink_options

        self.options = options or {}
        self.opts: Any = (
            parse_sink_options(self.type_name, self.Options, self.options)
            if self.Options is not None
            else None
        )
        self._reported = False
        self._report_lock = threading.Lock()

    def emit(self, event: MetricsEvent) -> None:
        raise NotImplementedError

    def report(self, exc: BaseException, what: str = "failed") -> None:
        """Tell the user once that this sink is not working; later failures stay quiet.

        For failures the dispatcher cannot see (a background writer thread)."""
        with self._report_lock:
            if self._reported:
                return
            self._reported = True
        print(
            f"llmcore: metrics sink {self.type_name} {what} and is ignored: {redact(str(exc))}",
            file=sys.stderr,
        )

    def flush(self) -> None:
        """Write out anything buffered."""

    def close(self) -> None:
        self.flush()


class Metrics:
    """Delivers events to the hook and to every enabled sink; a failing sink is reported once."""

    def __init__(self, hooks: Hooks, sinks: list[MetricsSink]) -> None:
        self._hooks = hooks
        self.sinks = sinks
        self._reported: set[str] = set()
        self._has_hook_impls = hooks.has_metrics_listeners()
        self._later: AbstractEventLoop | None = None

    @property
    def listening(self) -> bool:
        """Does anything receive events (a sink, or an ``llmcore_metrics_event`` hook impl)?

        Emitters on the request path check this before building an event: a
        ``MetricsEvent`` costs a few µs to make, and nothing is lost when nobody listens.
        """
        return bool(self.sinks) or self._has_hook_impls

    def deliver_later(self, loop: AbstractEventLoop | None) -> None:
        """Deliver the events emitted on ``loop`` (in its thread) once the callback that
        emitted them is over, not inside it; ``None`` goes back to delivering at once.

        For a server whose answer is written at the end of that callback (the gateway):
        the sinks and hooks then run after the answer is on its way, not between the
        upstream's reply and the client. Each event keeps the context it was emitted in
        (``call_soon`` copies it), so a hook reading a context variable sees the emitting
        request's. Events emitted from other threads are still delivered at once.
        """
        self._later = loop

    def emit(self, event: MetricsEvent) -> None:
        loop = self._later
        # _get_running_loop: None outside a loop (get_running_loop raises), on every event
        if loop is not None and _get_running_loop() is loop:
            loop.call_soon(self.deliver, event)
            return
        self.deliver(event)

    def deliver(self, event: MetricsEvent) -> None:
        """Hand ``event`` to the hook and every sink now."""
        if self._has_hook_impls:
            try:
                self._hooks.metrics_event(event)
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
