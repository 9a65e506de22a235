"""Two plugins offering one type name, a type whose plugin is disabled, a misspelt hook, a
plugin registered twice: each is reported clearly, with a defined outcome."""

from __future__ import annotations

import json
from pathlib import Path

import llmcore
import pytest
from core_support import make_dist, run_cli
from llmcore.errors import PluginError
from llmcore.plugins import PluginManager, hook_names

OFFERS_OPENAI = """
import llmcore

class Shadow(llmcore.OpenAIProvider):
    type_name = "openai"

@llmcore.hookimpl
def llmcore_register_providers():
    return [Shadow]
"""

OFFERS_ECHO = """
import llmcore

class Echo{n}(llmcore.Provider):
    type_name = "echo"

@llmcore.hookimpl
def llmcore_register_providers():
    return [Echo{n}]
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    make_dist(site, "llmcore-plugin-shadow", "shadow_openai", OFFERS_OPENAI, "shadow")
    make_dist(site, "llmcore-plugin-echo-b", "echo_b", OFFERS_ECHO.format(n="B"), "echo-b")
    make_dist(site, "llmcore-plugin-echo-a", "echo_a", OFFERS_ECHO.format(n="A"), "echo-a")
    return site


def test_plugins_reports_each_conflict_and_the_winner(site: Path, tmp_path: Path) -> None:
    out = run_cli("plugins", site=site, cwd=tmp_path, env={"NO_COLOR": "1"})
    assert out.returncode == 0, out.stderr
    warnings = [ln for ln in out.stderr.splitlines() if ln.startswith("warning:")]
    assert (
        "warning: provider type 'openai' is offered by both llmcore itself and "
        "llmcore-plugin-shadow; llmcore itself wins "
        "(disable the other in plugins.disabled)"
    ) in warnings
    # Between plugins, the first entry-point name in sort order wins: echo-a over echo-b.
    assert any(
        "'echo' is offered by both llmcore-plugin-echo-a and llmcore-plugin-echo-b; "
        "llmcore-plugin-echo-a wins" in w
        for w in warnings
    ), warnings
    records = {
        r["name"]: r
        for r in json.loads(run_cli("plugins", "--json", site=site, cwd=tmp_path).stdout)
    }
    assert records["llmcore-plugin-shadow"]["conflicts"] == [
        "provider type 'openai' is offered by both llmcore itself and "
        "llmcore-plugin-shadow; llmcore itself wins"
    ]
    assert (
        records["llmcore-plugin-echo-a"]["conflicts"]
        == records["llmcore-plugin-echo-b"]["conflicts"]
    )


def test_the_winner_is_the_class_used(site: Path, tmp_path: Path) -> None:
    code = (
        "from llmcore.runtime import Runtime; from llmcore.config import Config; "
        "rt = Runtime(Config()); t = rt.provider_types; "
        "import llmcore; print(t['openai'] is llmcore.OpenAIProvider, t['echo'].__module__)"
    )
    import os
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(site)},
        cwd=tmp_path,
    )
    assert out.stdout.split() == ["True", "echo_a"], out.stderr


def test_config_validate_and_doctor_report_conflicts(site: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "llmcore.yaml"
    cfg.write_text("providers:\n  e:\n    plugin: echo\n    base_url: http://127.0.0.1:9\n")
    out = run_cli("--config", str(cfg), "config", "validate", site=site, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "'echo' is offered by both" in out.stderr and "'openai'" in out.stderr
    doctor = run_cli(
        "--config", str(cfg), "doctor", "--json", "--timeout", "0.2", site=site, cwd=tmp_path
    )
    rows = json.loads(doctor.stdout)
    rows = rows["checks"] if isinstance(rows, dict) else rows
    conflicts = {r["name"]: r for r in rows if r["status"] == "conflict"}
    assert set(conflicts) == {"openai", "echo"}
    assert "llmcore-plugin-echo-a wins" in conflicts["echo"]["detail"]
    assert conflicts["echo"]["hint"]


@pytest.mark.parametrize(
    ("how", "where"), [("config", "plugins.disabled in"), ("env", "LLMCORE_PLUGINS")]
)
def test_a_type_whose_plugin_is_disabled_says_so_and_where(
    site: Path, tmp_path: Path, how: str, where: str
) -> None:
    cfg = tmp_path / "llmcore.yaml"
    text = "providers:\n  e:\n    plugin: echo-a\n"
    env = {}
    if how == "config":
        text += "plugins:\n  disabled: [echo-a]\n"
    else:
        env["LLMCORE_PLUGINS"] = "shadow"
    cfg.write_text(text)
    out = run_cli("--config", str(cfg), "config", "validate", site=site, cwd=tmp_path, env=env)
    assert out.returncode == 2
    assert (
        "llmcore.yaml:3: providers.e.plugin: plugin 'echo-a' is installed but disabled"
        in out.stderr
    )
    assert where in out.stderr and "llmcore install" not in out.stderr
    if how == "config":
        assert str(cfg) in out.stderr, "the message names the file that disables it"


MISSPELT = """
import llmcore

@llmcore.hookimpl
def llmcore_register_provider():
    return []
"""


def test_a_misspelt_hook_suggests_the_nearest(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    make_dist(site, "llmcore-plugin-typo", "typo_plugin", MISSPELT, "typo")
    out = run_cli("plugins", "--json", site=site, cwd=tmp_path)
    record = next(r for r in json.loads(out.stdout) if r["name"] == "llmcore-plugin-typo")
    assert record["status"] == "failed"
    assert "llmcore_register_provider" in record["error"]
    assert record["error"].endswith("did you mean llmcore_register_providers?")


def test_register_suggests_the_nearest_hook_too() -> None:
    import types

    module = types.ModuleType("typo_inline")
    exec(MISSPELT, module.__dict__)
    pm = PluginManager(load_entry_points=False)
    with pytest.raises(PluginError, match="did you mean llmcore_register_providers"):
        pm.register(module)
    assert "llmcore_generate" in hook_names()


def test_make_client_with_one_plugin_twice_is_a_clear_error(make_client) -> None:  # type: ignore[no-untyped-def]
    import types

    module = types.ModuleType("twice_plugin")

    @llmcore.hookimpl
    def llmcore_register_providers() -> list[type]:
        return []

    module.llmcore_register_providers = llmcore_register_providers  # type: ignore[attr-defined]
    with pytest.raises(PluginError, match="'twice_plugin' is already registered"):
        make_client("", module, module)
