"""A mixed run (local provider, a failover between cloud providers, an agent run) and what
``llmcore usage`` reports about it from the SQLite sink."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import Any

import llmcore
import pytest
from click.testing import CliRunner
from llmcore import hookimpl
from llmcore.cli import cli
from llmcore.testing import StaticProvider
from llmcore.testing.fakes import OpenAIFake, Reply
from llmcore.types import AgentResult, Usage

# gpt-4o-mini in the bundled registry: $0.15 in / $0.60 out per million tokens
CLOUD_COST = (1000 * 0.15 + 200 * 0.60) / 1e6


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


class ReportingAgent(llmcore.Agent):
    """Like Claude Code: the program reports its own tokens and cost in a JSON result."""

    type_name = "reporter"
    program = "fake-agent"

    def build(self, task: llmcore.AgentTask) -> llmcore.Invocation:
        return llmcore.Invocation(argv=[str(self.config.command), "--", task.prompt], cwd=task.cwd)

    def parse_line(self, line: str) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(line)
        except ValueError:
            return None
        return data

    def finish(self, task: llmcore.AgentTask, run: Any) -> AgentResult:
        result = super().finish(task, run)
        final = run.events[-1]
        result.usage = Usage(
            input_tokens=final["input_tokens"], output_tokens=final["output_tokens"]
        )
        result.cost_usd = final["cost_usd"]
        result.session_id = final["session_id"]
        return result


class Plugin:
    @hookimpl
    def llmcore_register_providers(self) -> list[Any]:
        return [StaticProvider]

    @hookimpl
    def llmcore_register_agents(self) -> list[Any]:
        return [ReportingAgent]


@pytest.fixture
def mixed_run(make_client: Any, tmp_path: Path) -> Path:
    script = tmp_path / "fake-agent"
    script.write_text(
        f"#!{sys.executable}\nimport json\n"
        "print(json.dumps({'type': 'result', 'input_tokens': 5000, 'output_tokens': 700,"
        " 'cost_usd': 0.0421, 'session_id': 'sess-1'}))\n"
    )
    script.chmod(0o755)
    db = tmp_path / "metrics.db"
    with OpenAIFake() as cloud:
        for _ in range(2):
            cloud.push(Reply(text="cloud answer", usage=(1000, 200), model="gpt-4o-mini"))
        text = f"""
providers:
  local: {{plugin: static, reply: "one two three", models: ["llama3.1:8b"]}}
  flaky:
    plugin: openai
    base_url: http://127.0.0.1:{closed_port()}/v1
    models: [gpt-4o-mini]
    retry: {{max_attempts: 1}}
    priority: 10
  cloud:
    plugin: openai
    base_url: {cloud.base_url}
    api_key: sk-test
    models: [gpt-4o-mini]
    priority: 20
agents:
  coder: {{plugin: reporter, command: {script}}}
metrics:
  sinks: [sqlite]
  sqlite: {{path: {db}}}
"""
        (tmp_path / "llmcore.yaml").write_text(text)
        client = make_client(text, Plugin())
        for _ in range(3):
            client.chat("hello there friend", provider="local")
        for _ in range(2):
            resp = client.chat("what is up", model="gpt-4o-mini")
            assert resp.provider == "cloud"
            assert [a.provider for a in resp.attempts if not a.ok] == ["flaky"]
        result = client.run_agent("coder", "fix the bug", cwd=tmp_path)
        assert result.success and result.cost_usd == 0.0421
        client.close()  # drains the sink's writer
    return tmp_path / "llmcore.yaml"


def usage_json(config: Path, *args: str) -> dict[str, Any]:
    out = CliRunner().invoke(cli, ["--config", str(config), "usage", "--json", *args])
    assert out.exit_code == 0, out.output
    data: dict[str, Any] = json.loads(out.output)
    return data


def test_usage_by_provider_counts_tokens_cost(mixed_run: Path) -> None:
    rows = {r["provider"]: r for r in usage_json(mixed_run, "--by", "provider")["rows"]}
    assert set(rows) == {"local", "cloud", "flaky", "coder"}
    local, cloud, flaky, coder = rows["local"], rows["cloud"], rows["flaky"], rows["coder"]
    assert (local["requests"], local["errors"], local["failed_attempts"]) == (3, 0, 0)
    assert (local["input_tokens"], local["output_tokens"]) == (9, 9)
    assert local["cost_usd"] == 0  # a local model costs nothing
    assert (cloud["requests"], cloud["errors"]) == (2, 0)
    assert (cloud["input_tokens"], cloud["output_tokens"]) == (2000, 400)
    assert cloud["cost_usd"] == pytest.approx(2 * CLOUD_COST)
    assert cloud["latency_p50_s"] is not None and cloud["latency_p95_s"] >= cloud["latency_p50_s"]
    # the failover: two tries failed on flaky, no request counted there
    assert (flaky["requests"], flaky["failed_attempts"]) == (0, 2)
    # the agent's own reported cost is kept, not recomputed
    assert (coder["requests"], coder["input_tokens"], coder["output_tokens"]) == (1, 5000, 700)
    assert coder["cost_usd"] == pytest.approx(0.0421)


def test_usage_by_model_agent_day(mixed_run: Path) -> None:
    by_model = {r["model"]: r for r in usage_json(mixed_run, "--by", "model")["rows"]}
    assert by_model["llama3.1:8b"]["requests"] == 3
    assert by_model["gpt-4o-mini"]["requests"] == 2
    assert by_model["gpt-4o-mini"]["failed_attempts"] == 2
    by_agent = usage_json(mixed_run, "--by", "agent")["rows"]
    assert [(r["agent"], r["requests"]) for r in by_agent] == [("coder", 1)]
    by_day = usage_json(mixed_run, "--by", "day", "--since", "1h")["rows"]
    assert len(by_day) == 1 and by_day[0]["requests"] == 3 + 2 + 1
    assert by_day[0]["cost_usd"] == pytest.approx(2 * CLOUD_COST + 0.0421)
    # nothing in the future window
    assert usage_json(mixed_run, "--since", "2999-01-01")["rows"] == []


def test_usage_table_and_prometheus_text(mixed_run: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    out = CliRunner(env={"COLUMNS": "200"}).invoke(
        cli, ["--config", str(mixed_run), "usage", "--by", "provider"]
    )
    assert out.exit_code == 0, out.output
    assert "cloud" in out.output and "failed tries" in out.output
    out = CliRunner().invoke(cli, ["--config", str(mixed_run), "usage", "--prometheus"])
    assert out.exit_code == 0, out.output
    fams = {f.name: f for f in text_string_to_metric_families(out.output)}
    reqs = {
        (s.labels["provider"], s.labels["outcome"]): s.value
        for s in fams["llmcore_requests"].samples
        if s.name == "llmcore_requests_total"
    }
    assert reqs == {("local", "ok"): 3.0, ("cloud", "ok"): 2.0}
    errors = [s for s in fams["llmcore_errors"].samples if s.name == "llmcore_errors_total"]
    assert [(s.labels["provider"], s.value) for s in errors] == [("flaky", 2.0)]
    cost = {
        s.labels["provider"]: s.value
        for s in fams["llmcore_cost_usd"].samples
        if s.name == "llmcore_cost_usd_total"
    }
    assert cost["cloud"] == pytest.approx(2 * CLOUD_COST)
    assert cost["coder"] == pytest.approx(0.0421)


def test_usage_rejects_bad_since(tmp_path: Path) -> None:
    out = CliRunner().invoke(cli, ["usage", "--since", "yesterday-ish"])
    assert out.exit_code != 0
    assert "24h" in out.output and "yesterday-ish" in out.output


def test_a_routed_agent_run_is_paid_once(make_client: Any, tmp_path: Path) -> None:
    # An agent answering a chat (serve_prompts) makes the router's `request` event and the
    # dispatcher's `agent_run` event, both with the agent's cost: usage and budgets count it
    # once (the agent_run carries the request id; see llmcore.agent_dispatch).
    from llmcore.budgets import spent
    from llmcore.sinks.sqlite import connect

    script = tmp_path / "fake-agent"
    script.write_text(
        f"#!{sys.executable}\nimport json\n"
        "print(json.dumps({'type': 'result', 'input_tokens': 50, 'output_tokens': 7,"
        " 'cost_usd': 0.25, 'session_id': 'sess-2'}))\n"
    )
    script.chmod(0o755)
    db = tmp_path / "metrics.db"
    text = f"""
providers:
  local: {{plugin: static, reply: "local", models: ["llama3.1:8b"]}}
agents:
  coder: {{plugin: reporter, command: {script}, serve_prompts: true}}
routing: {{state: memory, prefer: cli}}
metrics:
  sinks: [sqlite]
  sqlite: {{path: {db}}}
"""
    (tmp_path / "llmcore.yaml").write_text(text)
    client = make_client(text, Plugin())
    resp = client.chat("what is up")
    assert resp.provider == "coder" and resp.cost_usd == pytest.approx(0.25)
    direct = client.run_agent("coder", "fix the bug", cwd=tmp_path)  # not routed: counted
    assert direct.cost_usd == pytest.approx(0.25)
    client.close()

    conn = connect(db)
    try:
        rows = conn.execute(
            "SELECT kind, request_id, cost_usd FROM events WHERE kind IN ('request', 'agent_run')"
            " ORDER BY time"
        ).fetchall()
    finally:
        conn.close()
    kinds = sorted((k, rid is not None) for k, rid, _ in rows)
    assert kinds == [("agent_run", False), ("agent_run", True), ("request", True)]
    routed_rid = next(rid for k, rid, _ in rows if k == "request")
    assert any(k == "agent_run" and rid == routed_rid for k, rid, _ in rows)
    assert all(cost == pytest.approx(0.25) for _, _, cost in rows)

    assert spent(db, 0) == pytest.approx(0.5)  # the routed run once, the direct run once
    assert spent(db, 0, provider="coder") == pytest.approx(0.5)
    cfg = tmp_path / "llmcore.yaml"
    (coder,) = usage_json(cfg, "--by", "provider")["rows"]
    assert (coder["provider"], coder["requests"]) == ("coder", 2)
    assert coder["cost_usd"] == pytest.approx(0.5)
    (by_agent,) = usage_json(cfg, "--by", "agent")["rows"]
    assert (by_agent["agent"], by_agent["requests"]) == ("coder", 2)
