"""``llmcore plugin new``: a generated plugin installs, loads, can be disabled, and its own
generated tests pass, in a fresh environment with the core installed from the local path."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from packaging_support import ROOT, make_venv, pip_install, run_in


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    python = make_venv(tmp_path_factory.mktemp("template") / "venv", pip=True)
    pip_install(python, ROOT / "core", "pytest>=8")
    return python


def _new(venv: Path, where: Path, name: str, kind: str, *extra: str) -> Path:
    out = run_in(
        venv, "plugin", "new", name, "--kind", kind, "--dir", str(where / name), *extra, cwd=where
    )
    assert out.returncode == 0, out.stderr
    return where / name


def _records(venv: Path, cwd: Path) -> dict[str, dict[str, object]]:
    out = run_in(venv, "plugins", "--json", cwd=cwd)
    assert out.returncode == 0, out.stderr
    return {r["name"]: r for r in json.loads(out.stdout)}


def _pytest(venv: Path, project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("kind", "wire"), [("provider", None), ("provider", "custom"), ("agent", None)]
)
def test_generated_plugin_is_ready(venv: Path, tmp_path: Path, kind: str, wire: str | None) -> None:
    name = f"acme-{kind}" + (f"-{wire}" if wire else "")
    project = _new(venv, tmp_path, name, kind, *(["--wire", wire] if wire else []))
    files = sorted(p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file())
    module = "llmcore_" + name.replace("-", "_")
    assert "pyproject.toml" in files and "README.md" in files
    assert f"src/{module}/__init__.py" in files and f"tests/test_{module}.py" in files
    assert "{{" not in "".join((project / f).read_text() for f in files), "unfilled template"

    # Its tests pass as generated (before it is even installed: pythonpath = src).
    result = _pytest(venv, project)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout
    if wire == "custom":
        # A sans-IO skeleton: a pure wire module, a fake server, the whole contract suite
        # (with the malicious-server kit) passing as generated.
        assert f"src/{module}/wire.py" in files and "tests/fake_server.py" in files
        assert "test_hostile_server" in _pytest_names(venv, project)
        source = (project / "src" / module / "__init__.py").read_text()
        assert "import httpx" not in source and "OpenAIProvider" not in source

    # Installing it editable makes `llmcore plugins` show it, loaded: with pip as the
    # README says for the provider, with `llmcore install --editable` for the agent.
    if kind == "provider":
        out = subprocess.run(
            [str(venv), "-m", "pip", "install", "-q", "-e", str(project)],
            capture_output=True,
            text=True,
            timeout=300,
        )
    else:
        out = run_in(venv, "install", "--editable", str(project), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    record = _records(venv, tmp_path)[f"llmcore-plugin-{name}"]
    assert record["status"] == "loaded", record["error"]
    hook = "llmcore_register_providers" if kind == "provider" else "llmcore_register_agents"
    assert record["hooks"] == [hook]
    section = "providers" if kind == "provider" else "agents"
    (tmp_path / "llmcore.yaml").write_text(f"{section}:\n  mine:\n    plugin: {name}\n")
    out = run_in(venv, "providers", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert {"name": "mine", "plugin": name} in [
        {"name": e["name"], "plugin": e["plugin"]} for e in json.loads(out.stdout)
    ]

    # Disabled in config: never imported, shown as disabled, offers nothing.
    (tmp_path / "llmcore.yaml").write_text(f"plugins:\n  disabled: [{name}]\n")
    assert _records(venv, tmp_path)[f"llmcore-plugin-{name}"]["status"] == "disabled"
    listed = json.loads(run_in(venv, "providers", "--json", cwd=tmp_path).stdout)
    assert name not in {e["plugin"] for e in listed}

    out = run_in(venv, "uninstall", name, cwd=tmp_path)
    assert out.returncode == 0, out.stderr


def _pytest_names(venv: Path, project: Path) -> str:
    return subprocess.run(
        [str(venv), "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout


def test_wire_custom_is_for_providers_only(venv: Path, tmp_path: Path) -> None:
    out = run_in(venv, "plugin", "new", "x", "--kind", "agent", "--wire", "custom", cwd=tmp_path)
    assert out.returncode == 1 and "--wire custom is for providers" in out.stderr
    assert not (tmp_path / "llmcore-plugin-x").exists()


def test_bad_names_and_existing_dirs_are_refused(venv: Path, tmp_path: Path) -> None:
    out = run_in(venv, "plugin", "new", "Bad_Name!", "--kind", "provider", cwd=tmp_path)
    assert out.returncode == 1 and "not a usable plugin name" in out.stderr
    (tmp_path / "llmcore-plugin-taken").mkdir()
    (tmp_path / "llmcore-plugin-taken" / "keep.txt").write_text("mine")
    out = run_in(venv, "plugin", "new", "taken", "--kind", "agent", cwd=tmp_path)
    assert out.returncode == 1 and "not empty" in out.stderr
    assert (tmp_path / "llmcore-plugin-taken" / "keep.txt").read_text() == "mine"
