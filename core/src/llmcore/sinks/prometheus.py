"""The ``prometheus`` sink: counters, histograms and a cooldown gauge for Prometheus.

Options (``metrics.prometheus``):

* ``port`` (default 9464; 0 picks a free port, see ``sink.port``) and ``host`` (default
  ``127.0.0.1``: metrics are not published beyond this machine unless asked) for the
  scrape endpoint; ``serve: false`` starts no server.
* ``pushgateway``: a Pushgateway URL; then nothing is served and the metrics are pushed
  every ``push_interval`` seconds (default 15) and at close, under ``job`` (default
  ``llmcore``).

Each sink instance has its own ``CollectorRegistry`` (two clients in one process never
collide). The metric names are documented in ``docs/metrics.md``.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import attrs

from ..errors import ConfigError
from ..metrics import MetricsEvent, MetricsSink
from ..pricing import Unpriced, price_event

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
AGENT_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


@attrs.define
class PrometheusOptions:
    port: int = 9464
    host: str = "127.0.0.1"
    serve: bool = True
    pushgateway: str | None = None
    push_interval: float = 15.0
    job: str = "llmcore"


class PrometheusMetrics:
    """The metric objects, in one ``CollectorRegistry``; fed one event at a time."""

    def __init__(self, pricer: Any = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        #: ``pricer()`` returns the model registry once it is loaded, else ``None``: events
        #: that carry tokens but no cost are priced from it (as the sqlite sink does).
        self.pricer = pricer
        r = self.registry = CollectorRegistry(auto_describe=True)
        pmo = ("provider", "model", "outcome")
        self.requests = Counter(
            "llmcore_requests",
            "Requests as the caller saw them (after retries and failover).",
            pmo,
            registry=r,
        )
        self.attempts = Counter(
            "llmcore_attempts", "Tries of one provider for a request.", pmo, registry=r
        )
        self.errors = Counter(
            "llmcore_errors",
            "Failed tries and failed agent runs, by error class.",
            ("provider", "model", "error"),
            registry=r,
        )
        self.tokens = Counter(
            "llmcore_tokens", "Tokens processed.", ("provider", "model", "direction"), registry=r
        )
        self.cost = Counter(
            "llmcore_cost_usd", "Spend in US dollars.", ("provider", "model"), registry=r
        )
        self.latency = Histogram(
            "llmcore_request_latency_seconds",
            "Whole-request latency.",
            pmo,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "llmcore_time_to_first_token_seconds",
            "Time until the first token arrived.",
            pmo,
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.failovers = Counter(
            "llmcore_failovers", "Moves to the next provider.", ("provider", "model"), registry=r
        )
        self.retries = Counter(
            "llmcore_retries", "Retries of the same provider.", ("provider", "model"), registry=r
        )
        self.cooldown = Gauge(
            "llmcore_provider_cooldown_until_seconds",
            "Unix time until which a provider is cooling down (0: not).",
            ("provider",),
            registry=r,
        )
        self.agent_runs = Counter(
            "llmcore_agent_runs", "Agent runs.", ("agent", "outcome"), registry=r
        )
        self.agent_duration = Histogram(
            "llmcore_agent_run_duration_seconds",
            "Agent run wall time.",
            ("agent", "outcome"),
            buckets=AGENT_BUCKETS,
            registry=r,
        )
        self.files_changed = Counter(
            "llmcore_agent_files_changed", "Files agents changed.", ("agent",), registry=r
        )
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._unpriced = Unpriced()  # models the registry has no price for: asked once

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered: prometheus_client validates the labels
        and takes a lock on every ``labels()`` call, several times per request."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = metric.labels(*labels)
            if len(self._children) < 10_000:  # label sets are few; never grow without end
                self._children[key] = child
        return child

    def observe(self, e: MetricsEvent | dict[str, Any]) -> None:
        # An event is read field by field (MetricsEvent.get), not copied into a dict: this
        # runs for every event, on the request path, and reads a few of its ~30 fields.
        d: Any = e
        kind = d.get("kind")
        provider = d.get("provider") or ""
        model = d.get("model") or ""
        outcome = d.get("outcome") or "ok"
        if kind == "request":
            self._child(self.requests, provider, model, outcome).inc()
            if d.get("latency_s") is not None:
                self._child(self.latency, provider, model, outcome).observe(d.get("latency_s"))
            if d.get("ttft_s") is not None:
                self._child(self.ttft, provider, model, outcome).observe(d.get("ttft_s"))
            self._spend(d, provider, model)
        elif kind == "attempt":
            self._child(self.attempts, provider, model, outcome).inc()
            if outcome != "ok":
                self._child(self.errors, provider, model, outcome).inc()
        elif kind == "retry":
            self._child(self.retries, provider, model).inc()
        elif kind == "failover":
            self._child(self.failovers, provider, model).inc()
        elif kind == "cooldown":
            self._child(self.cooldown, provider).set(d.get("cooldown_until") or 0.0)
        elif kind == "stream" and d.get("ttft_s") is not None:
            self._child(self.ttft, provider, model, outcome).observe(d.get("ttft_s"))
        elif kind == "agent_run":
            agent = d.get("agent") or provider
            self._child(self.agent_runs, agent, outcome).inc()
            if outcome != "ok":
                self._child(self.errors, agent, model, outcome).inc()
            duration = d.get("duration_s") or d.get("latency_s")
            if duration is not None:
                self._child(self.agent_duration, agent, outcome).observe(duration)
            if d.get("files_changed"):
                self._child(self.files_changed, agent).inc(d.get("files_changed"))
            self._spend(d, agent, model)

    def _spend(self, d: Any, who: str, model: str) -> None:
        for direction in ("input", "output"):
            n = d.get(f"{direction}_tokens")
            if n:
                self._child(self.tokens, who, model, direction).inc(n)
        cost = d.get("cost_usd")
        if cost is None and self.pricer is not None:
            registry = self.pricer()
            key = (d.get("model"), d.get("plugin"))
            if registry is not None and key not in self._unpriced:
                cost = price_event(registry, d)
                if cost is None:
                    self._unpriced.note(registry, *key)
        if cost:
            self._child(self.cost, who, model).inc(cost)

    def text(self) -> str:
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()


class PrometheusSink(MetricsSink):
    type_name: ClassVar[str] = "prometheus"
    Options: ClassVar[type | None] = PrometheusOptions

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        o = self.opts
        if not 0 <= o.port <= 65535:
            raise ConfigError(f"metrics.prometheus.port: {o.port} is not a TCP port")
        if o.pushgateway and o.push_interval <= 0:
            raise ConfigError("metrics.prometheus.push_interval must be positive")
        self._registry: Any = None
        # the model registry (a YAML parse) loads off the request path; until it is there,
        # events without a cost are counted without one
        threading.Thread(
            target=self._load_registry, daemon=True, name="llmcore-prometheus-registry"
        ).start()
        self.metrics = PrometheusMetrics(pricer=lambda: self._registry)
        self.port: int | None = None
        self._server: Any = None
        self._stop = threading.Event()
        self._pusher: threading.Thread | None = None
        if o.pushgateway:
            self._pusher = threading.Thread(
                target=self._push_loop, daemon=True, name="llmcore-prometheus-push"
            )
            self._pusher.start()
        elif o.serve:
            from prometheus_client import start_http_server

            try:
                self._server, _ = start_http_server(
                    o.port, addr=o.host, registry=self.metrics.registry
                )
            except OSError as exc:
                raise ConfigError(
                    f"metrics.prometheus: cannot listen on {o.host}:{o.port}: {exc}",
                    hint="choose another metrics.prometheus.port (0 picks a free one)",
                ) from exc
            self.port = self._server.server_address[1]

    def _load_registry(self) -> None:
        try:
            from ..registry import get_registry

            self._registry = get_registry(None)
        except Exception as exc:
            self.report(exc, "cannot price events")

    def emit(self, event: MetricsEvent) -> None:
        self.metrics.observe(event)

    def push(self) -> None:
        from prometheus_client import push_to_gateway

        assert self.opts.pushgateway
        push_to_gateway(
            self.opts.pushgateway, job=self.opts.job, registry=self.metrics.registry, timeout=5
        )

    def _push_loop(self) -> None:
        while not self._stop.wait(self.opts.push_interval):
            try:
                self.push()
            except Exception as exc:  # Pushgateway down: say so once, keep trying
                self.report(exc, "could not push")

    def flush(self) -> None:
        if self.opts.pushgateway:
            try:
                self.push()
            except Exception as exc:
                self.report(exc, "could not push")

    def close(self) -> None:
        self._stop.set()
        self.flush()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
