"""``/metrics`` of a gateway with several workers, from the existing prometheus sink.

The supervisor points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before any worker
imports ``prometheus_client``: every worker's sink (and the gateway's own request counter)
then writes its values to files there, and any worker answers a scrape with all of them
summed (``MultiProcessCollector``). With one process and no such directory, the sink's own
registry is exposed.
"""

from __future__ import annotations

import os
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class GatewayMetrics:
    def __init__(self, sink_registry: Any = None) -> None:
        from prometheus_client import CollectorRegistry, Counter

        self.multiproc_dir = os.environ.get(MULTIPROC_ENV)
        self.sink_registry = sink_registry
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "llmcore_gateway_requests",
            "Requests the gateway answered, by endpoint, client "
            "key name, the provider that answered and HTTP status.",
            ("endpoint", "key", "provider", "status"),
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, str, int], Any] = {}

    def request(self, endpoint: str, key: str | None, provider: str, status: int) -> None:
        # the child remembered: labels() validates and locks on every call
        k = (endpoint, key or "", provider, status)
        child = self._children.get(k)
        if child is None:
            child = self.requests.labels(endpoint, key or "", provider, str(status))
            if len(self._children) < 10_000:
                self._children[k] = child
        child.inc()

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self.multiproc_dir:
            from prometheus_client.multiprocess import MultiProcessCollector

            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=self.multiproc_dir)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        body = generate_latest(self.registry)
        if self.sink_registry is not None:
            body += generate_latest(self.sink_registry)
        return body, CONTENT_TYPE_LATEST
