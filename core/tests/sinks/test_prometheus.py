"""The Prometheus sink: served on 127.0.0.1 and read back with prometheus_client's parser;
every metric named in docs/metrics.md exists; pushing to a (fake) Pushgateway."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from llmcore import hookimpl
from llmcore.errors import ConfigError, ProviderConnectionError
from llmcore.metrics import MetricsEvent
from llmcore.sinks.prometheus import PrometheusSink
from llmcore.testing import StaticProvider
from prometheus_client.parser import text_string_to_metric_families

DOC = Path(__file__).resolve().parents[3] / "docs" / "metrics.md"


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(fams: dict[str, Any], sample: str, **labels: str) -> float:
    family = fams[re.sub(r"_(total|bucket|count|sum)$", "", sample)]
    for s in family.samples:
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    raise AssertionError(f"no sample {sample} {labels}")


class P:
    @hookimpl
    def llmcore_register_providers(self) -> list[Any]:
        return [StaticProvider]


def test_endpoint_serves_request_metrics(make_client: Any) -> None:
    client = make_client(
        """
providers:
  first: {plugin: static, reply: "a b c", models: [m1], retry: {max_attempts: 1}}
  second: {plugin: static, reply: "d e", models: [m1]}
agents: {}
metrics: {sinks: [prometheus], prometheus: {port: 0}}
""",
        P(),
    )
    sink = client.runtime.metrics.sinks[0]
    assert isinstance(sink, PrometheusSink)
    assert sink._server.server_address[0] == "127.0.0.1"  # not published beyond this host
    client.chat("one two")
    client.runtime.providers["first"].fail_with = ProviderConnectionError("refused")
    client.chat("three four five")
    client.runtime.metrics.emit(
        MetricsEvent(kind="cooldown", provider="first", cooldown_until=1.9e9)
    )
    text = httpx.get(f"http://127.0.0.1:{sink.port}/metrics", timeout=5).text
    fams = families(text)
    assert value(fams, "llmcore_requests_total", provider="first", outcome="ok") == 1
    assert value(fams, "llmcore_requests_total", provider="second", outcome="ok") == 1
    assert (
        value(fams, "llmcore_errors_total", provider="first", error="ProviderConnectionError") == 1
    )
    assert value(fams, "llmcore_tokens_total", provider="second", direction="input") == 3
    assert value(fams, "llmcore_tokens_total", provider="first", direction="output") == 3
    assert value(fams, "llmcore_request_latency_seconds_count", provider="second") == 1
    assert value(fams, "llmcore_provider_cooldown_until_seconds", provider="first") == 1.9e9
    client.close()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{sink.port}/metrics", timeout=2)


def test_every_documented_metric_is_exposed() -> None:
    documented = set(re.findall(r"^\| `(llmcore_[a-z_]+)` \|", DOC.read_text(), re.M))
    assert len(documented) >= 10
    sink = PrometheusSink({"serve": False})
    for e in (
        MetricsEvent(
            kind="request",
            provider="p",
            model="m",
            input_tokens=3,
            output_tokens=4,
            cost_usd=0.01,
            latency_s=0.2,
            ttft_s=0.05,
        ),
        MetricsEvent(kind="attempt", provider="p", model="m", outcome="ProviderTimeoutError"),
        MetricsEvent(kind="retry", provider="p", model="m"),
        MetricsEvent(kind="failover", provider="p", model="m"),
        MetricsEvent(kind="cooldown", provider="p", cooldown_until=5.0),
        MetricsEvent(
            kind="agent_run", agent="aider", provider="aider", duration_s=3.0, files_changed=2
        ),
    ):
        sink.emit(e)
    exposed = {
        s.name for f in text_string_to_metric_families(sink.metrics.text()) for s in f.samples
    }
    missing = {
        name for name in documented if not ({name, name + "_count", name + "_bucket"} & exposed)
    }
    assert not missing


def test_port_in_use_is_a_clear_error() -> None:
    first = PrometheusSink({"port": 0})
    try:
        with pytest.raises(ConfigError, match=r"cannot listen on 127\.0\.0\.1:\d+"):
            PrometheusSink({"port": first.port})
    finally:
        first.close()


class _Gateway(BaseHTTPRequestHandler):
    bodies: list[tuple[str, str, bytes]] = []

    def _any(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        _Gateway.bodies.append((self.command, self.path, self.rfile.read(n)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PUT = do_POST = _any

    def log_message(self, *a: Any) -> None:
        pass


def test_pushes_to_pushgateway_on_close() -> None:
    _Gateway.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        sink = PrometheusSink({"pushgateway": url, "job": "ci", "push_interval": 600})
        assert sink.port is None  # pushing, not serving
        sink.emit(MetricsEvent(kind="request", provider="p", model="m", latency_s=0.1))
        sink.close()
    finally:
        server.shutdown()
        server.server_close()
    assert len(_Gateway.bodies) == 1
    method, path, body = _Gateway.bodies[0]
    assert (method, path) == ("PUT", "/metrics/job/ci")
    assert b"llmcore_requests_total" in body


def test_unreachable_pushgateway_reported_once(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    sink = PrometheusSink({"pushgateway": f"http://127.0.0.1:{port}", "push_interval": 600})
    sink.flush()
    sink.flush()
    sink.close()
    assert capsys.readouterr().err.count("metrics sink prometheus could not push") == 1


def priced_sink() -> PrometheusSink:
    """A sink whose model registry (loaded off the request path) is there."""
    import time

    sink = PrometheusSink({"serve": False})
    deadline = time.monotonic() + 10
    while sink._registry is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return sink


def test_events_without_cost_are_priced_from_the_registry() -> None:
    sink = priced_sink()
    sink.emit(
        MetricsEvent(
            kind="request",
            provider="api",
            plugin="openai",
            model="gpt-4o",
            input_tokens=1000,
            output_tokens=100,
        )
    )
    sink.emit(
        MetricsEvent(
            kind="request",
            provider="box",
            plugin="ollama",
            model="llama3.1",
            input_tokens=1000,
            output_tokens=100,
        )
    )
    sink.emit(
        MetricsEvent(
            kind="request",
            provider="api",
            plugin="openai",
            model="gpt-4o",
            input_tokens=1,
            output_tokens=1,
            cost_usd=0.5,
        )
    )
    fams = families(sink.metrics.text())
    assert value(fams, "llmcore_cost_usd_total", provider="api") == pytest.approx(
        (1000 * 2.5 + 100 * 10) / 1e6 + 0.5
    )
    with pytest.raises(AssertionError, match="no sample"):  # local: free, nothing counted
        value(fams, "llmcore_cost_usd_total", provider="box")


def test_a_model_with_no_price_is_looked_up_once() -> None:
    sink = priced_sink()
    registry = sink._registry
    looked: list[object] = []
    real = registry.price

    def price(model: object, plugin: str) -> object:
        looked.append(model)
        return real(model, plugin)

    registry.price = price  # type: ignore[method-assign]

    def request(model: str) -> MetricsEvent:
        return MetricsEvent(
            kind="request", provider="api", plugin="openai", model=model,
            input_tokens=1000, output_tokens=100,
        )  # fmt: skip

    for _ in range(5):
        sink.emit(request("my-finetune-nobody-priced"))
        sink.emit(request("gpt-4o"))
    assert looked.count("my-finetune-nobody-priced") <= 2  # the first event, not every one
    fams = families(sink.metrics.text())
    assert value(fams, "llmcore_cost_usd_total", provider="api", model="gpt-4o") == pytest.approx(
        5 * (1000 * 2.5 + 100 * 10) / 1e6
    )  # a priced model is still priced on every event
    assert value(fams, "llmcore_tokens_total", model="my-finetune-nobody-priced",
                 direction="input") == 5000  # fmt: skip


def test_grafana_dashboard_queries_only_documented_metrics() -> None:
    import json

    dash = json.loads((DOC.parent / "grafana-dashboard.json").read_text())
    documented = set(re.findall(r"^\| `(llmcore_[a-z_]+)` \|", DOC.read_text(), re.M))
    used = {
        re.sub(r"_bucket$", "", name)
        for panel in dash["panels"]
        for t in panel["targets"]
        for name in re.findall(r"llmcore_[a-z_]+", t["expr"])
    }
    assert used and used <= documented, used - documented
    # every panel reads the data source the user picks on import
    assert all(p["datasource"]["uid"] == "${datasource}" for p in dash["panels"])
