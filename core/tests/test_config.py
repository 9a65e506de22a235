"""Config: structure, errors naming key path and line, secrets, lookup order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from core_support import run_cli
from llmcore.config import find_config, load_config, parse_config
from llmcore.errors import ConfigError


def error_of(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="llmcore.yaml")
    return info.value


def test_full_config_structures() -> None:
    c = parse_config("""
plugins:
  disabled: [codex]
providers:
  local:
    plugin: ollama
    base_url: http://127.0.0.1:11434
    models: [llama3.2, qwen2.5]
    timeout: 5
    retry: {max_attempts: 4, wait: fixed, delay: 0.1}
    keep_alive: 5m
  cloud:
    plugin: ollama
    priority: 5
    api_key_env: OLLAMA_API_KEY
    timeout: {connect: 1, read: 30}
agents:
  aider:
    mode: auto_edit
    env: {FOO: bar}
routing: {strategy: round_robin, cooldown: {rate_limit_seconds: 60}}
metrics: {sinks: [jsonl]}
""")
    assert c.plugins.disabled == ["codex"]
    assert set(c.providers or {}) == {"local", "cloud"}
    local = (c.providers or {})["local"]
    assert local.plugin == "ollama" and local.models == ["llama3.2", "qwen2.5"]
    assert local.timeout.read == 5 and local.timeout.connect == 5
    assert local.retry.max_attempts == 4 and local.retry.wait == "fixed"
    assert local.options == {"keep_alive": "5m"}
    assert (c.providers or {})["cloud"].timeout.connect == 1
    assert (c.agents or {})["aider"].plugin == "aider"
    assert c.routing.strategy == "round_robin"
    assert c.routing.cooldown.rate_limit_seconds == 60


@pytest.mark.parametrize(
    ("text", "path", "line", "needle"),
    [
        ("routing:\n  strategi: cost\n", "routing.strategi", 2, "did you mean strategy?"),
        (
            "providers:\n  x:\n    retry:\n      max_atempts: 3\n",
            "providers.x.retry.max_atempts",
            4,
            "did you mean max_attempts?",
        ),
        ("providers:\n  x:\n    priority: high\n", "providers.x.priority", 3, "whole number"),
        ("providers:\n  x:\n    timeout: -1\n", "providers.x.timeout", 3, "positive"),
        ("providers:\n  x:\n    base_url: localhost:11434\n", "providers.x.base_url", 3, "URL"),
        ("agents:\n  a:\n    mode: yolo\n", "agents.a.mode", 3, "unknown mode"),
        ("agents:\n  a:\n    timeout: 0\n", "agents.a.timeout", 3, "positive"),
        ("routing:\n  strategy: fastest\n", "routing.strategy", 2, "unknown strategy"),
        ("metrics:\n  enabled: maybe\n", "metrics.enabled", 2, "true or false"),
        ("nonsense: 1\n", "nonsense", 1, "unknown key"),
    ],
)
def test_errors_name_path_and_line(text: str, path: str, line: int, needle: str) -> None:
    err = error_of(text)
    assert err.path == path
    assert err.line == line
    assert needle in str(err)
    assert str(err).startswith(f"llmcore.yaml:{line}: {path}")


def test_a_name_yaml_reads_as_a_boolean_is_refused() -> None:
    err = error_of("providers:\n  off:\n    plugin: ollama\n")
    assert err.path == "providers" and "not a string" in str(err) and "quote" in str(err)


def test_invalid_yaml_names_the_line() -> None:
    err = error_of("providers:\n  x: [unclosed\n")
    assert "not valid YAML" in str(err) and err.line is not None


def test_env_interpolation_and_missing_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_HOST", "127.0.0.1")
    c = parse_config("providers:\n  x:\n    base_url: http://${LLM_HOST}:${LLM_PORT:-8080}\n")
    assert (c.providers or {})["x"].base_url == "http://127.0.0.1:8080"
    err = error_of("providers:\n  x:\n    api_key: ${NOT_SET_ANYWHERE}\n")
    assert "NOT_SET_ANYWHERE is not set" in str(err) and err.path == "providers.x.api_key"


def test_lookup_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, llmcore_isolated: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_config() is None
    assert load_config().providers is None  # defaults: every installed plugin
    user = llmcore_isolated / "config" / "llmcore" / "llmcore.yaml"
    user.parent.mkdir(parents=True)
    user.write_text("routing: {strategy: cost}\n")
    assert find_config() == user
    local = tmp_path / "llmcore.yaml"
    local.write_text("routing: {strategy: latency}\n")
    assert find_config() == local
    env = tmp_path / "env.yaml"
    env.write_text("routing: {strategy: least_busy}\n")
    monkeypatch.setenv("LLMCORE_CONFIG", str(env))
    assert find_config() == env
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text("{}\n")
    assert find_config(explicit) == explicit
    with pytest.raises(ConfigError, match="not found"):
        find_config(tmp_path / "missing.yaml")


def test_cli_exits_2_with_path_and_suggestion(tmp_path: Path) -> None:
    cfg = tmp_path / "llmcore.yaml"
    cfg.write_text("providers:\n  ollama:\n    base_ulr: http://127.0.0.1:11434\n")
    for args in (("config", "validate"), ("providers",), ("providers", "--json")):
        out = run_cli("--config", str(cfg), *args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert "providers.ollama.base_ulr: unknown key, did you mean base_url?" in out.stderr
        assert ":3:" in out.stderr
        assert "Traceback" not in out.stderr


def test_unknown_plugin_lists_installed(tmp_path: Path) -> None:
    cfg = tmp_path / "llmcore.yaml"
    cfg.write_text("providers:\n  mine:\n    plugin: olama\n")
    out = run_cli("--config", str(cfg), "config", "validate")
    assert out.returncode == 2
    assert "unknown plugin 'olama', did you mean ollama?" in out.stderr
    assert "installed:" in out.stderr and "vllm" in out.stderr


def test_several_instances_of_one_plugin(tmp_path: Path) -> None:
    cfg = tmp_path / "llmcore.yaml"
    cfg.write_text(
        "providers:\n  local:\n    plugin: ollama\n  cloud:\n    plugin: ollama\n"
        "    base_url: http://127.0.0.1:9999\n    priority: 1\n"
    )
    out = run_cli("--config", str(cfg), "providers", "--json")
    assert out.returncode == 0, out.stderr
    items = [p for p in json.loads(out.stdout) if p["kind"] == "api"]
    assert [(p["name"], p["plugin"]) for p in items] == [("local", "ollama"), ("cloud", "ollama")]
    for p in json.loads(out.stdout):
        assert {"name", "plugin", "kind", "enabled", "priority"} <= set(p)


def test_config_show_never_prints_keys(tmp_path: Path) -> None:
    cfg = tmp_path / "llmcore.yaml"
    cfg.write_text(
        "providers:\n  x:\n    plugin: openai\n    base_url: http://127.0.0.1:1/v1\n"
        "    api_key: sk-literal-secret-123456789\n    api_token: tok-abcdef\n"
        "routing:\n  state: redis://default:redis-pass-42@127.0.0.1:6379/0\n"
    )
    for fmt in ((), ("--json",)):
        out = run_cli("--config", str(cfg), "config", "show", *fmt)
        assert out.returncode == 0, out.stderr
        assert "sk-literal-secret" not in out.stdout and "tok-abcdef" not in out.stdout
        assert "redis-pass-42" not in out.stdout and "127.0.0.1:6379" in out.stdout
        assert "***" in out.stdout


def test_config_path(tmp_path: Path) -> None:
    cfg = tmp_path / "llmcore.yaml"
    cfg.write_text("{}\n")
    out = run_cli("config", "path", env={"LLMCORE_CONFIG": str(cfg)})
    assert out.stdout.strip() == str(cfg)
