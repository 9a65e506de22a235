"""Every distribution as users get it: built wheels in a fresh environment, not editable.

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
from packaging_support import CORE, PLUGINS, built_dists, make_venv, pip_install, run_in, wheel

SHORT = [p.removeprefix("llmcore-plugin-") for p in PLUGINS]
#: Plugins for hosted APIs only: not set up without a config section.
HOSTED = {"anthropic"}


@pytest.fixture(scope="module")
def dist() -> Path:
    return built_dists()


@pytest.fixture(scope="module")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the core and every plugin from their wheels."""
    python = make_venv(tmp_path_factory.mktemp("wheels") / "venv")
    pip_install(python, wheel(dist, CORE), *(wheel(dist, p) for p in PLUGINS))
    return python


def test_one_wheel_and_sdist_per_distribution_one_version(dist: Path) -> None:
    wheels = sorted(dist.glob("*.whl"))
    sdists = sorted(dist.glob("*.tar.gz"))
    assert len(PLUGINS) >= 10, "the core and at least ten plugins are published"
    assert len(wheels) == len(PLUGINS) + 1 and len(sdists) == len(PLUGINS) + 1
    versions = {w.name.split("-")[1] for w in wheels} | {
        s.name.rsplit("-", 1)[1][:-7] for s in sdists
    }
    import llmcore

    assert versions == {llmcore.__version__}, "all are released with one version"


def _metadata(whl: Path) -> str:
    with zipfile.ZipFile(whl) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        return z.read(name).decode()


def test_every_wheel_has_complete_metadata(dist: Path) -> None:
    for name in [CORE, *PLUGINS]:
        meta = _metadata(wheel(dist, name))
        for field in (
            "Summary: ",
            "Requires-Python: >=3.10",
            "License-Expression: ",
            "Project-URL: ",
            "Classifier: Programming Language :: Python :: 3.13",
            "Description-Content-Type: text/markdown",
        ):
            assert field in meta, f"{name}: METADATA lacks {field!r}"
        if name != CORE:
            import llmcore

            major = llmcore.HOOK_API_VERSION.split(".")[0]
            keywords = next(
                (line for line in meta.splitlines() if line.startswith("Keywords:")), ""
            )
            assert f"llmcore-hook-api-{major}" in keywords, (
                f"{name}: metadata should say which hook API it targets, got {keywords!r}"
            )
            requires = [line for line in meta.splitlines() if line.startswith("Requires-Dist:")]
            core = [r for r in requires if r.split()[1].startswith("llmcore")]
            assert core and "<" in core[0] and ">=" in core[0], (
                f"{name} must pin a range of llmcore versions, got {core}"
            )


def test_plugins_depend_on_the_core_by_its_published_name(dist: Path) -> None:
    """The index's ``llmcore`` is an unrelated project: no wheel may ask for it."""
    import llmcore

    assert _metadata(wheel(dist, CORE)).splitlines()[1:3] == [
        f"Name: {CORE}",
        f"Version: {llmcore.__version__}",
    ]
    for name in PLUGINS:
        requires = [
            line.split()[1]
            for line in _metadata(wheel(dist, name)).splitlines()
            if line.startswith("Requires-Dist:")
        ]
        core = [r for r in requires if r.lower().startswith("llmcore")]
        assert [r.split(">")[0].split("<")[0] for r in core] == [CORE], (name, requires)


def test_installing_one_plugin_brings_the_core(dist: Path, tmp_path: Path) -> None:
    """``pip install llmcore-plugin-aider`` from the wheels (third-party dependencies from
    the index) resolves the core by its published name and works."""
    python = make_venv(tmp_path / "venv", pip=True)
    import subprocess

    from packaging_support import _env

    out = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--find-links",
            str(dist),
            "llmcore-plugin-aider",
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format", "json"],
        capture_output=True,
        text=True,
        env=_env(),
        check=True,
    ).stdout
    names = {p["name"].lower(): p["version"] for p in json.loads(listed)}
    import llmcore

    assert names.get(CORE) == llmcore.__version__, sorted(names)
    assert "llmcore" not in names, "the unrelated `llmcore` project must not come along"
    version = run_in(python, "--version", cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout.splitlines() == [
        f"llmcore {llmcore.__version__}",
        f"  llmcore-plugin-aider {llmcore.__version__}",
    ]
    plugins = run_in(python, "plugins", "--json", cwd=tmp_path)
    assert [(r["name"], r["status"]) for r in json.loads(plugins.stdout)] == [
        ("llmcore-plugin-aider", "loaded")
    ]
    meta = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m, llmcore; "
            f"print(m.version({CORE!r}) == llmcore.__version__)",
        ],
        capture_output=True,
        text=True,
        env=_env(),
        check=True,
    )
    assert meta.stdout.strip() == "True"


def test_agent_plugins_pull_no_http_sdk(dist: Path) -> None:
    sdks = ("openai", "anthropic", "httpx", "aiohttp", "requests", "ollama", "google-genai")
    for name in PLUGINS:
        module = name.removeprefix("llmcore-plugin-")
        if module in ("ollama", "vllm", "lmstudio"):
            continue  # providers may need an HTTP client (httpx already comes with the core)
        requires = [
            line.split()[1].lower()
            for line in _metadata(wheel(dist, name)).splitlines()
            if line.startswith("Requires-Dist:")
        ]
        assert not [r for r in requires if r.startswith(sdks)], f"{name} pulls {requires}"


def test_every_source_file_is_in_its_wheel(dist: Path) -> None:
    """Modules, templates, bundled data: nothing under src/ may be left out of a wheel."""
    from packaging_support import ROOT

    for name in [CORE, *PLUGINS]:
        src = ROOT / ("core" if name == CORE else f"plugins/{name}") / "src"
        wanted = {
            p.relative_to(src).as_posix()
            for p in src.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }
        with zipfile.ZipFile(wheel(dist, name)) as z:
            shipped = set(z.namelist())
        assert wanted - shipped == set(), f"{name}: left out of the wheel"


def test_wheels_ship_package_data(dist: Path) -> None:
    with zipfile.ZipFile(wheel(dist, CORE)) as z:
        names = z.namelist()
    assert "llmcore/testing/fakes/openai.py" in names
    assert any(n.startswith("llmcore/templates/provider/") for n in names), (
        "the `llmcore plugin new` templates must ship in the wheel"
    )
    with tarfile.open(next(dist.glob("llmcore_framework-*.tar.gz"))) as t:
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
    records = json.loads(run_in(installed, "plugins", "--json", cwd=tmp_path).stdout)
    offering = {
        r["name"].removeprefix("llmcore-plugin-")
        for r in records
        if {"llmcore_register_providers", "llmcore_register_agents"} & set(r["hooks"])
    }
    assert offering - HOSTED, "no plugin offers a provider or an agent"
    # With no config file only local servers and agents are set up; a hosted API needs a
    # key and a section of its own, checked below.
    assert offering - HOSTED <= plugins, f"missing: {offering - HOSTED - plugins}"
    (tmp_path / "llmcore.yaml").write_text(
        "".join(f"providers:\n  {h}:\n    plugin: {h}\n" for h in HOSTED)
    )
    out = run_in(installed, "providers", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    api = {e["plugin"] for e in json.loads(out.stdout) if e["kind"] == "api"}
    assert api == HOSTED, "a providers: section replaces the implicit local servers"


def test_config_typo_exits_2(installed: Path, tmp_path: Path) -> None:
    (tmp_path / "llmcore.yaml").write_text("routing:\n  stratgey: priority\n")
    out = run_in(installed, "config", "validate", cwd=tmp_path)
    assert out.returncode == 2
    assert "stratgey" in out.stderr and "did you mean strategy" in out.stderr
    assert "Traceback" not in out.stderr


def test_incompatible_hook_api_is_reported_failed(installed: Path, tmp_path: Path) -> None:
    """A plugin built for another hook API version shows as failed, naming both versions."""
    site = next((installed.parent.parent / "lib").glob("python3*/site-packages"))
    (site / "future_plugin.py").write_text("import llmcore\nLLMCORE_HOOK_API = '>=2,<3'\n")
    info = site / "llmcore_plugin_future-9.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: llmcore-plugin-future\nVersion: 9.0\n"
    )
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
    where = subprocess.run(
        [str(installed), "-c", "import llmcore; print(llmcore.__file__)"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
    ).stdout
    assert "site-packages" in where and str(ROOT / "core") not in where, where
    suites = [
        "core/tests/test_cli.py",
        "core/tests/test_plugins.py",
        "core/tests/cli/test_chat_cmds.py",
    ]
    out = subprocess.run(
        [str(installed), "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *suites],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    passed = int(re.search(r"(\d+) passed", out.stdout).group(1))  # type: ignore[union-attr]
    assert passed >= 20 and " skipped" not in out.stdout, out.stdout[-500:]
