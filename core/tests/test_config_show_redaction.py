"""``config show`` hides secrets by value, not only by key name: a number under a
token-sounding name stays visible, a secret under any header or nested key does not."""

from __future__ import annotations

import json
from pathlib import Path

from core_support import run_cli


def test_numbers_stay_visible_and_secrets_hidden_at_any_depth(tmp_path: Path) -> None:
    cfg = tmp_path / "llmcore.yaml"
    cfg.write_text(
        "providers:\n  x:\n    plugin: openai\n    base_url: http://127.0.0.1:1/v1\n"
        "    headers:\n      Authorization: Bearer opaque-credential-99\n"
        "      X-Trace: visible-trace-id\n"
        "    extra_body:\n      max_tokens: 512\n      service_token: opaque-body-secret\n"
        "      note: sk-proj-abcdefghijklmnopqrstuvwx\n"
    )
    out = run_cli("--config", str(cfg), "config", "show", "--json")
    assert out.returncode == 0, out.stderr
    options = json.loads(out.stdout)["providers"]["x"]["options"]
    assert options["headers"] == {"Authorization": "***", "X-Trace": "visible-trace-id"}
    assert options["extra_body"]["max_tokens"] == 512, "a number is no secret"
    assert options["extra_body"]["service_token"] == "***"
    assert "sk-proj-abcdefghijklmnopqrstuvwx" not in out.stdout, "key-shaped text is redacted"
    for secret in ("opaque-credential-99", "opaque-body-secret"):
        assert secret not in out.stdout


def test_an_integer_option_named_like_a_token_is_shown(tmp_path: Path) -> None:
    cfg = tmp_path / "llmcore.yaml"
    cfg.write_text(
        "providers:\n  c:\n    plugin: anthropic\n    default_max_tokens: 2048\n"
        "    api_key: sk-ant-literal-000000000000\n"
    )
    out = run_cli("--config", str(cfg), "config", "show")
    assert out.returncode == 0, out.stderr
    assert "default_max_tokens: 2048" in out.stdout
    assert "sk-ant-literal" not in out.stdout and "api_key: '***'" in out.stdout
