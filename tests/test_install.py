"""``llmcore install`` / ``uninstall`` by short name, in a fresh environment built from wheels."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
from packaging_support import CORE, ROOT, built_dists, make_venv, pip_install, run_in, wheel


@pytest.fixture(scope="module")
def dist() -> Path:
    return built_dists()


def _core_only(dist: Path, where: Path, *, pip: bool = False) -> Path:
    python = make_venv(where / "venv", pip=pip)
    pip_install(python, wheel(dist, CORE))
    return python


def _plugins(python: Path, cwd: Path) -> dict[str, str]:
    out = run_in(python, "plugins", "--json", cwd=cwd)
    assert out.returncode == 0, out.stderr
    return {r["name"]: r["status"] for r in json.loads(out.stdout)}


def test_install_and_uninstall_by_short_name_with_uv(dist: Path, tmp_path: Path) -> None:
    python = _core_only(dist, tmp_path)
    assert _plugins(python, tmp_path) == {}
    out = run_in(
        python,
        "install",
        "aider",
        "claude-code",
        "--no-index",
        "--find-links",
        str(dist),
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "installed llmcore-plugin-aider" in out.stdout
    assert "installed llmcore-plugin-claude-code" in out.stdout
    assert "uv" in out.stderr.splitlines()[0]  # the command it ran is shown
    assert _plugins(python, tmp_path) == {
        "llmcore-plugin-aider": "loaded",
        "llmcore-plugin-claude-code": "loaded",
    }
    out = run_in(python, "uninstall", "aider", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "removed llmcore-plugin-aider" in out.stdout
    assert _plugins(python, tmp_path) == {"llmcore-plugin-claude-code": "loaded"}


def test_install_a_wheel_path_with_pip(dist: Path, tmp_path: Path) -> None:
    python = _core_only(dist, tmp_path, pip=True)
    env = {"LLMCORE_INSTALLER": "pip"}
    out = run_in(
        python,
        "install",
        str(wheel(dist, "llmcore-plugin-qwen")),
        "--no-index",
        cwd=tmp_path,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "-m pip install" in out.stderr
    assert _plugins(python, tmp_path) == {"llmcore-plugin-qwen": "loaded"}
    out = run_in(python, "uninstall", "qwen", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert _plugins(python, tmp_path) == {}


def test_install_editable_from_a_checkout(dist: Path, tmp_path: Path) -> None:
    python = _core_only(dist, tmp_path)
    out = run_in(
        python,
        "install",
        "--editable",
        str(ROOT / "plugins" / "llmcore-plugin-gemini"),
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert _plugins(python, tmp_path) == {"llmcore-plugin-gemini": "loaded"}
    where = subprocess.run(
        [str(python), "-c", "import llmcore_gemini; print(llmcore_gemini.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(ROOT / "plugins") in where, "an editable install runs from the checkout"


def test_bad_arguments_are_clear_errors(dist: Path, tmp_path: Path) -> None:
    python = _core_only(dist, tmp_path)
    out = run_in(python, "install", "--editable", "aider", cwd=tmp_path)
    assert out.returncode == 1 and "--editable needs local paths" in out.stderr
    out = run_in(python, "uninstall", "nosuch", cwd=tmp_path)
    assert out.returncode == 1
    assert "not installed: llmcore-plugin-nosuch" in out.stderr
    assert "installed plugins: none" in out.stderr
    out = run_in(python, "install", "aider", cwd=tmp_path, env={"LLMCORE_INSTALLER": "conda"})
    assert out.returncode == 1 and "must be pip or uv" in out.stderr


def test_uninstall_works_when_every_plugin_breaks_startup(dist: Path, tmp_path: Path) -> None:
    """A plugin whose import kills the process (not just raises) can still be removed."""
    python = _core_only(dist, tmp_path)
    project = tmp_path / "llmcore-plugin-broken"
    (project / "src" / "llmcore_broken").mkdir(parents=True)
    (project / "src" / "llmcore_broken" / "__init__.py").write_text(
        "raise SystemExit('llmcore_broken cannot start')\n"
    )
    (project / "pyproject.toml").write_text(
        textwrap.dedent("""\
        [build-system]
        requires = ["hatchling>=1.24"]
        build-backend = "hatchling.build"

        [project]
        name = "llmcore-plugin-broken"
        version = "0.0.1"
        dependencies = ["llmcore-framework"]

        [project.entry-points.llmcore]
        broken = "llmcore_broken"

        [tool.hatch.build.targets.wheel]
        packages = ["src/llmcore_broken"]
        """)
    )
    out = run_in(python, "install", str(project), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    broken = run_in(python, "plugins", cwd=tmp_path)
    assert broken.returncode != 0 and "llmcore_broken cannot start" in broken.stderr
    (tmp_path / "llmcore.yaml").write_text("plugins:\n  disabled: []\n")
    out = run_in(
        python,
        "--debug",
        "--config",
        str(tmp_path / "llmcore.yaml"),
        "uninstall",
        "broken",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "removed llmcore-plugin-broken 0.0.1" in out.stdout
    assert run_in(python, "plugins", "--json", cwd=tmp_path).stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("aider", "llmcore-plugin-aider"),
        ("Claude_Code", "llmcore-plugin-claude-code"),
        ("llmcore-plugin-qwen", "llmcore-plugin-qwen"),
        ("aider>=0.1,<0.2", "llmcore-plugin-aider>=0.1,<0.2"),
        ("aider == 0.1.0", "llmcore-plugin-aider==0.1.0"),
        ("llmcore[redis]", "llmcore-framework[redis]"),
        ("llmcore-framework", "llmcore-framework"),
    ],
)
def test_short_names_become_distribution_names(arg: str, expected: str) -> None:
    from llmcore.cli.install_cmds import requirement

    assert requirement(arg) == expected


def test_paths_are_kept_as_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmcore.cli.install_cmds import requirement

    monkeypatch.chdir(tmp_path)
    (tmp_path / "plug").mkdir()
    assert requirement("./plug") == str(tmp_path / "plug")
    assert requirement("dist/x-1.0-py3-none-any.whl") == str(
        tmp_path / "dist" / "x-1.0-py3-none-any.whl"
    )
    from llmcore.cli.install_cmds import InstallError

    with pytest.raises(InstallError, match="neither a plugin name nor a path"):
        requirement("!!bad")
