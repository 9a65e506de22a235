"""Plugin loading: isolation of failures, LLMCORE_PLUGINS, config disabling, strict mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from core_support import make_dist, run_cli
from llmcore.hookspecs import HOOK_API_VERSION
from llmcore.plugins import check_api_version

NINE = {
    "llmcore-plugin-ollama",
    "llmcore-plugin-vllm",
    "llmcore-plugin-lmstudio",
    "llmcore-plugin-claude-code",
    "llmcore-plugin-codex",
    "llmcore-plugin-gemini",
    "llmcore-plugin-qwen",
    "llmcore-plugin-aider",
    "llmcore-plugin-opencode",
}

# A plugin that fails the moment it is imported; used to prove it was never imported.
EXPLODES = """
raise RuntimeError("boom: imported although it should not be")
"""


def plugins_json(*args: str, site: Path | None = None, **kw: object) -> list[dict]:
    out = run_cli("plugins", "--json", *args, site=site, **kw)  # type: ignore[arg-type]
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def by_name(items: list[dict]) -> dict[str, dict]:
    return {p["name"]: p for p in items}


def test_the_nine_plugins_are_loaded() -> None:
    items = by_name(plugins_json())
    assert set(items) >= NINE
    for name in NINE:
        assert items[name]["status"] == "loaded", items[name]
        assert items[name]["error"] is None
        assert items[name]["hooks"], name
        assert items[name]["version"]


def test_a_plugin_failing_at_import_is_reported_and_the_rest_work(fake_site: Path) -> None:
    make_dist(fake_site, "llmcore-plugin-broken", "broken_plugin", EXPLODES)
    items = by_name(plugins_json(site=fake_site))
    assert items["llmcore-plugin-broken"]["status"] == "failed"
    assert "boom" in items["llmcore-plugin-broken"]["error"]
    assert all(items[n]["status"] == "loaded" for n in NINE)
    # the other plugins still serve: their providers are listed
    out = run_cli("providers", "--json", site=fake_site)
    assert out.returncode == 0, out.stderr
    assert {"ollama", "aider"} <= {p["name"] for p in json.loads(out.stdout)}


def test_a_plugin_raising_while_registering_is_failed(fake_site: Path) -> None:
    make_dist(
        fake_site,
        "llmcore-plugin-badreg",
        "badreg_plugin",
        """
        import llmcore

        @llmcore.hookimpl
        def llmcore_register_providers():
            raise ValueError("cannot register")
    """,
    )
    items = by_name(plugins_json(site=fake_site))
    assert items["llmcore-plugin-badreg"]["status"] == "failed"
    assert "cannot register" in items["llmcore-plugin-badreg"]["error"]
    assert items["llmcore-plugin-ollama"]["status"] == "loaded"


def test_strict_mode_raises(fake_site: Path) -> None:
    make_dist(fake_site, "llmcore-plugin-broken", "broken_plugin", EXPLODES)
    out = run_cli("plugins", "--json", site=fake_site, env={"LLMCORE_STRICT_PLUGINS": "1"})
    assert out.returncode != 0
    assert "llmcore-plugin-broken failed to load" in out.stderr
    assert "Traceback" not in out.stderr


def test_llmcore_plugins_env_keeps_others_unimported(fake_site: Path) -> None:
    make_dist(fake_site, "llmcore-plugin-broken", "broken_plugin", EXPLODES)
    items = by_name(plugins_json(site=fake_site, env={"LLMCORE_PLUGINS": "ollama,aider"}))
    assert items["llmcore-plugin-broken"]["status"] == "disabled"
    assert items["llmcore-plugin-ollama"]["status"] == "loaded"
    assert items["llmcore-plugin-aider"]["status"] == "loaded"
    assert items["llmcore-plugin-codex"]["status"] == "disabled"


def test_empty_llmcore_plugins_loads_none() -> None:
    items = plugins_json(env={"LLMCORE_PLUGINS": ""})
    assert {p["status"] for p in items} == {"disabled"}


def test_config_disabled_plugin_is_never_imported(fake_site: Path, tmp_path: Path) -> None:
    make_dist(fake_site, "llmcore-plugin-broken", "broken_plugin", EXPLODES)
    cfg = tmp_path / "llmcore.yaml"
    cfg.write_text("plugins:\n  disabled: [broken, llmcore-plugin-codex]\n")
    items = by_name(plugins_json("--config", str(cfg), site=fake_site))
    items2 = by_name(plugins_json(site=fake_site, env={"LLMCORE_CONFIG": str(cfg)}))
    for got in (items, items2):
        assert got["llmcore-plugin-broken"]["status"] == "disabled"
        assert got["llmcore-plugin-broken"]["error"] is None
        assert got["llmcore-plugin-codex"]["status"] == "disabled"
        assert got["llmcore-plugin-aider"]["status"] == "loaded"


def test_incompatible_hook_api_is_failed_naming_both_versions(fake_site: Path) -> None:
    make_dist(
        fake_site,
        "llmcore-plugin-future",
        "future_plugin",
        """
        LLMCORE_HOOK_API = "2"
    """,
    )
    items = by_name(plugins_json(site=fake_site))
    err = items["llmcore-plugin-future"]["error"]
    assert items["llmcore-plugin-future"]["status"] == "failed"
    assert "hook API 2" in err and f"offers {HOOK_API_VERSION}" in err


def test_bad_hook_signature_is_failed(fake_site: Path) -> None:
    make_dist(
        fake_site,
        "llmcore-plugin-badsig",
        "badsig_plugin",
        """
        import llmcore

        @llmcore.hookimpl
        def llmcore_generate(call, unknown_argument):
            return None
    """,
    )
    items = by_name(plugins_json(site=fake_site))
    assert items["llmcore-plugin-badsig"]["status"] == "failed"
    assert "unknown_argument" in items["llmcore-plugin-badsig"]["error"]


@pytest.mark.parametrize(
    ("spec", "ok"),
    [
        ("1", True),
        ("1.0", True),
        ("2", False),
        (">=1,<2", True),
        (">=1.1", False),
        ("<1", False),
    ],
)
def test_hook_api_spec(spec: str, ok: bool) -> None:
    assert check_api_version(spec, "1.0") is ok


def test_import_llmcore_imports_no_plugin_and_no_http_stack() -> None:
    import subprocess
    import sys

    code = (
        "import sys, llmcore; bad=[m for m in sys.modules if m.startswith(('llmcore_',"
        "'httpx','aiohttp','rich','click','cattrs'))]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_plugin_discovery_imports_no_http_stack() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from llmcore.runtime import Runtime; from llmcore.config import Config;"
        "rt=Runtime(Config()); rt.provider_types; rt.agent_types; rt.sink_types;"
        "print([m for m in sys.modules if m.startswith(('httpx','aiohttp','anthropic',"
        "'openai','ollama','prometheus_client','sqlite3','rich'))])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
