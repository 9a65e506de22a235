"""``llmcore doctor``: every component with its state and what to do, probes in parallel."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from llmcore import hookimpl
from llmcore.cli import cli
from llmcore.config import parse_config
from llmcore.doctor import run_checks
from llmcore.plugins import PluginManager
from llmcore.runtime import Runtime
from llmcore.testing.fakes import OpenAIFake, Reply, VLLMFake


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def run(config: Path, *args: str) -> Any:
    return CliRunner(env={"COLUMNS": "220"}).invoke(cli, ["--config", str(config), "doctor", *args])


def by_name(data: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["component"], c["name"]): c for c in data["checks"]}


def test_doctor_reports_each_component(tmp_path: Path) -> None:
    fake_agent = tmp_path / "aider"
    fake_agent.write_text(f"#!{sys.executable}\nprint('aider 9.9.9')\n")
    fake_agent.chmod(0o755)
    with VLLMFake() as up, OpenAIFake() as hung:
        hung.push(Reply(delay=3))  # /v1/models answers far too late
        cfg = tmp_path / "llmcore.yaml"
        cfg.write_text(f"""
providers:
  up: {{plugin: openai, base_url: {up.base_url}}}
  down: {{plugin: openai, base_url: "http://127.0.0.1:{closed_port()}/v1"}}
  slow: {{plugin: openai, base_url: {hung.base_url}}}
  ghost: {{plugin: no-such-plugin}}
  paused: {{plugin: openai, enabled: false}}
agents:
  here: {{plugin: aider, command: {fake_agent}}}
  gone: {{plugin: aider, command: /nonexistent/bin/aider}}
metrics:
  sinks: [sqlite, jsonl, nosuch]
  jsonl: {{max_byte: 1}}
""")
        out = run(cfg, "--json")
        data = json.loads(out.output)
        checks = by_name(data)
        assert out.exit_code == 1 and data["ok"] is False  # ghost and the sinks are broken

        ok = checks[("provider", "up")]
        assert ok["status"] == "ok" and ok["models"] == ["fake-model"]
        assert ok["latency_s"] is not None
        down = checks[("provider", "down")]
        assert down["status"] == "unreachable" and "refused" in down["detail"].lower()
        assert down["hint"]
        assert checks[("provider", "slow")]["status"] in ("unreachable", "timeout")
        ghost = checks[("provider", "ghost")]
        assert ghost["status"] == "failed" and "llmcore install no-such-plugin" in ghost["hint"]
        assert checks[("provider", "paused")]["status"] == "disabled"

        here = checks[("agent", "here")]
        assert here["status"] == "ok" and "9.9.9" in here["version"]
        gone = checks[("agent", "gone")]
        assert gone["status"] == "missing" and "agents.gone.command" in gone["hint"]

        assert checks[("sink", "sqlite")]["status"] == "ok"
        jsonl = checks[("sink", "jsonl")]
        assert jsonl["status"] == "failed" and "did you mean max_bytes" in jsonl["detail"]
        assert checks[("sink", "nosuch")]["status"] == "failed"
        assert checks[("config", str(cfg))]["status"] == "ok"

        table = run(cfg)
    assert table.exit_code == 1
    for text in (
        "llmcore doctor",
        "provider up",
        "unreachable",
        "missing",
        "→ install it:",
        "9.9.9",
        "fake-model",
    ):
        assert text in table.output, text


def test_doctor_with_nothing_running(tmp_path: Path) -> None:
    """Default config: every installed plugin, nothing listening. A clear table, exit 0."""
    cfg = tmp_path / "llmcore.yaml"
    cfg.write_text(f"""
providers:
  local-llm: {{plugin: openai, base_url: "http://127.0.0.1:{closed_port()}/v1"}}
agents: {{}}
""")
    out = run(cfg)
    assert out.exit_code == 0, out.output
    assert "provider local-llm" in out.output and "unreachable" in out.output
    assert "start the server" in out.output or "→" in out.output
    data = json.loads(run(cfg, "--json").output)
    assert data["ok"] is True
    plugins = [c for c in data["checks"] if c["component"] == "plugin"]
    assert plugins and all(c["status"] == "ok" for c in plugins)


def test_doctor_reports_a_broken_config(tmp_path: Path) -> None:
    cfg = tmp_path / "llmcore.yaml"
    cfg.write_text("routing: {strategy: fastest}\n")
    out = run(cfg, "--json")
    assert out.exit_code == 1
    data = json.loads(out.output)
    config = next(c for c in data["checks"] if c["component"] == "config")
    assert config["status"] == "failed" and "unknown strategy" in config["detail"]


def test_plugin_failing_to_register_is_a_failed_row() -> None:
    class Broken:
        @hookimpl
        def llmcore_register_providers(self) -> list[Any]:
            raise ImportError("libfoo.so: cannot open shared object file")

    pm = PluginManager(load_entry_points=False)
    pm.register(Broken(), name="broken-plugin")
    checks = run_checks(Runtime(parse_config("providers: {}\nagents: {}"), pm))
    row = next(c for c in checks if c.name == "broken-plugin")
    assert row.status == "failed" and "libfoo.so" in row.detail
    assert row.hint and "plugins.disabled" in row.hint
