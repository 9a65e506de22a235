"""The ten distributions as users get them: built wheels in a fresh environment, not editable.

A file missing from a wheel, a wrong entry point or a dependency left out of a pyproject
makes these fail, where the editable workspace would not notice.
"""

from __future__ import annotations

import json
import re
import tarfile
import zipfile
from pathlib import Path

import pytest
from packaging_support import PLUGINS, built_dists, make_venv, pip_install, run_in, wheel

SHORT = [p.removeprefix("llmcore-plugin-") for p in PLUGINS]


@pytest.fixture(scope="module")
def dist() -> Path:
    return built_dists()


@pytest.fixture(scope="module")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the core and the nine plugins from their wheels."""
    python = make_venv(tmp_path_factory.mktemp("wheels") / "venv")
    pip_install(python, wheel(dist, "llmcore"), *(wheel(dist, p) for p in PLUGINS))
    return python


def test_twenty_artifacts_one_version(dist: Path) -> None:
    wheels = sorted(dist.glob("*.whl"))
    sdists = sorted(dist.glob("*.tar.gz"))
    assert len(wheels) == len(sdists) == len(PLUGINS) + 1 == 11
    versions = {w.name.split("-")[1] for w in wheels} | {s.name.rsplit("-", 1)[1][:-7]
                                                         for s in sdists}
    import llmcore

    assert versions == {llmcore.__version__}, "all are released with one version"


def _metadata(whl: Path) -> str:
    with zipfile.ZipFile(whl) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        return z.read(name).decode()


def test_every_wheel_has_complete_metadata(dist: Path) -> None:
    for name in ["llmcore", *PLUGINS]:
        meta = _metadata(wheel(dist, name))
        for field in ("Summary: ", "Requires-Python: >=3.10", "License-Expression: ",
                      "Project-URL: ", "Classifier: Programming Language :: Python :: 3.13",
                      "Description-Content-Type: text/markdown"):
            assert field in meta, f"{name}: METADATA lacks {field!r}"
        if name != "llmcore":
            import llmcore

            major = llmcore.HOOK_API_VERSION.split(".")[0]
            keywords = next((line for line in meta.splitlines()
                             if line.startswith("Keywords:")), "")
            assert f"llmcore-hook-api-{major}" in keywords, (
                f"{name}: metadata should say which hook API it targets, got {keywords!r}")
            requires = [line for line in meta.splitlines() if line.startswith("Requires-Dist:")]
            core = [r for r in requires if r.split()[1].startswith("llmcore")]
            assert core and "<" in core[0] and ">=" in core[0], (
                f"{name} must pin a range of llmcore versions, got {core}")


def test_agent_plugins_pull_no_http_sdk(dist: Path) -> None:
    sdks = ("openai", "anthropic", "httpx", "aiohttp", "requests", "ollama", "google-genai")
    for name in PLUGINS:
        module = name.removeprefix("llmcore-plugin-")
        if module in ("ollama", "vllm", "lmstudio"):
            continue  # providers may need an HTTP client (httpx already comes with the core)
        requires = [line.split()[1].lower() for line in _metadata(wheel(dist, name)).splitlines()
                    if line.startswith("Requires-Dist:")]
        assert not [r for r in requires if r.startswith(sdks)], f"{name} pulls {requires}"


def test_every_source_file_is_in_its_wheel(dist: Path) -> None:
    """Modules, templates, bundled data: nothing under src/ may be left out of a wheel."""
    from packaging_support import ROOT

    for name in ["llmcore", *PLUGINS]:
        src = ROOT / ("core" if name == "llmcore" else f"plugins/{name}") / "src"
        wanted = {p.relative_to(src).as_posix() for p in src.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts}
        with zipfile.ZipFile(wheel(dist, name)) as z:
            shipped = set(z.namelist())
        assert wanted - shipped == set(), f"{name}: left out of the wheel"


def test_wheels_ship_package_data(dist: Path) -> None:
    with zipfile.ZipFile(wheel(dist, "llmcore")) as z:
        names = z.namelist()
    assert "llmcore/testing/fakes/openai.py" in names
    assert any(n.startswith("llmcore/templates/provider/") for n in names), \
        "the `llmcore plugin new` templates must ship in the wheel"
    with tarfile.open(next(dist.glob("llmcore-*.tar.gz"))) as t:
        assert any(n.endswith("/README.md") for n in t.getnames())


def test_version_lists_every_plugin(installed: Path, tmp_path: Path) -> None:
    out = run_in(installed, "--version", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    import llmcore

    assert lines[0] == f"llmcore {llmcore.__version__}"
    listed = {line.split()[0]: line.split()[1] for line in lines[1:]}
    assert listed == {p: llmcore.__version__ for p in PLUGINS}


def test_plugins_all_load_from_wheels(installed: Path, tmp_path: Path) -> None:
    out = run_in(installed, "plugins", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    records = json.loads(out.stdout)
    assert sorted(r["name"] for r in records) == PLUGINS
    assert [r for r in records if r["status"] != "loaded"] == []
    assert all(r["hooks"] for r in records), "every plugin implements at least one hook"


def test_providers_from_wheels(installed: Path, tmp_path: Path) -> None:
    out = run_in(installed, "providers", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    plugins = {e["plugin"] for e in json.loads(out.stdout)}
    assert set(SHORT) <= plugins, f"missing: {set(SHORT) - plugins}"


def test_config_typo_exits_2(installed: Path, tmp_path: Path) -> None:
    (tmp_path / "llmcore.yaml").write_text("routing:\n  stratgey: priority\n")
    out = run_in(installed, "config", "validate", cwd=tmp_path)
    assert out.returncode == 2
    assert "stratgey" in out.stderr and "did you mean strategy" in out.stderr
    assert "Traceback" not in out.stderr


def test_incompatible_hook_api_is_reported_failed(installed: Path, tmp_path: Path) -> None:
    """A plugin built for another hook API version shows as failed, naming both versions."""
    site = next((installed.parent.parent / "lib").glob("python3*/site-packages"))
    (site / "future_plugin.py").write_text(
        "import llmcore\nLLMCORE_HOOK_API = '>=2,<3'\n")
    info = site / "llmcore_plugin_future-9.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: llmcore-plugin-future\nVersion: 9.0\n")
    (info / "entry_points.txt").write_text("[llmcore]\nfuture = future_plugin\n")
    try:
        out = run_in(installed, "plugins", "--json", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        record = next(r for r in json.loads(out.stdout) if r["name"] == "llmcore-plugin-future")
        assert record["status"] == "failed"
        import llmcore

        assert ">=2,<3" in record["error"] and llmcore.HOOK_API_VERSION in record["error"]
        others = [r for r in json.loads(out.stdout) if r["name"] != "llmcore-plugin-future"]
        assert all(r["status"] == "loaded" for r in others)
    finally:
        (site / "future_plugin.py").unlink()
        for f in info.iterdir():
            f.unlink()
        info.rmdir()


def test_cli_test_suites_pass_against_the_wheels(installed: Path) -> None:
    """The CLI's own end-to-end tests, run by the wheel environment's Python.

    They start ``sys.executable -m llmcore``, so here every command runs from the installed
    wheels: a module, template or entry point missing from a wheel fails them.
    """
    import subprocess

    from packaging_support import ROOT, _env

    pip_install(installed, "pytest>=8", "pytest-timeout>=2.3", "pytest-asyncio>=0.24")
    where = subprocess.run([str(installed), "-c", "import llmcore; print(llmcore.__file__)"],
                           capture_output=True, text=True, cwd=ROOT, env=_env()).stdout
    assert "site-packages" in where and str(ROOT / "core") not in where, where
    suites = ["core/tests/test_cli.py", "core/tests/test_plugins.py", "tests/test_cli_chat.py"]
    out = subprocess.run([str(installed), "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                          *suites], capture_output=True, text=True, cwd=ROOT, env=_env(),
                         timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    passed = int(re.search(r"(\d+) passed", out.stdout).group(1))  # type: ignore[union-attr]
    assert passed >= 20 and " skipped" not in out.stdout, out.stdout[-500:]
