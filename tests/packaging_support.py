"""Built distributions and fresh virtual environments, for tests that install like users do.

Editable installs in the workspace hide packaging mistakes (a file left out of the wheel, a
missing entry point or dependency), so these helpers build the real wheels with
``scripts/build-dists.sh`` and install them into a new environment.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from workspace_plugins import PLUGINS

ROOT = Path(__file__).resolve().parent.parent
# The core's distribution name (the index's `llmcore` is another project).
CORE = "llmcore-framework"
CACHE = ROOT / ".ci-cache"
# Read before the autouse fixture points XDG_CACHE_HOME at a temporary directory: uv keeps
# its shared cache, so a fresh venv costs links, not downloads.
UV_CACHE = os.environ.get("UV_CACHE_DIR") or str(
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "uv"
)


def _source_hash() -> str:
    """A hash of every file that goes into a distribution, so a build is reused only while
    the sources are unchanged."""
    h = hashlib.sha256()
    roots = [ROOT / "core", *(ROOT / "plugins" / p for p in PLUGINS)]
    for root in roots:
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(ROOT).as_posix()
            if not path.is_file() or "__pycache__" in rel or "/tests/" in rel or ".egg" in rel:
                continue
            h.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def built_dists() -> Path:
    """A folder with a wheel and an sdist of every distribution, built once from the
    current sources."""
    from filelock import FileLock

    CACHE.mkdir(exist_ok=True)
    out = CACHE / f"dist-{_source_hash()}"
    with FileLock(str(CACHE / "dist.lock")):
        if len(list(out.glob("*.whl"))) != len(PLUGINS) + 1:
            for old in CACHE.glob("dist-*"):
                shutil.rmtree(old, ignore_errors=True)
            subprocess.run(
                ["bash", str(ROOT / "scripts" / "build-dists.sh"), str(out)],
                check=True,
                capture_output=True,
                text=True,
            )
    return out


def wheel(dist: Path, name: str) -> Path:
    """The wheel of distribution ``name`` (``llmcore-framework``, ``llmcore-plugin-aider``)."""
    stem = name.replace("-", "_")
    found = [w for w in dist.glob(f"{stem}-*.whl") if w.name.split("-")[0] == stem]
    assert len(found) == 1, f"expected one wheel for {name} in {dist}, found {found}"
    return found[0]


def uv() -> str:
    """uv is how the dev setup installs everything; these tests use it for speed too."""
    found = shutil.which("uv")
    assert found, "uv is not on PATH; scripts/dev-setup.sh installs it"
    return found


def make_venv(path: Path, *, pip: bool = False) -> Path:
    """A new virtual environment at ``path``; returns its python. ``pip=True`` seeds pip."""
    cmd = [uv(), "venv", "--quiet", "--python", sys.executable, str(path)]
    if pip:
        cmd.insert(3, "--seed")
    subprocess.run(cmd, check=True, env=_env())
    return path / "bin" / "python"


def pip_install(python: Path, *args: str | Path) -> None:
    """Install into ``python``'s environment (dependencies come from the normal index)."""
    subprocess.run(
        [uv(), "pip", "install", "--quiet", "--python", str(python), *map(str, args)],
        check=True,
        env=_env(),
    )


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LLMCORE_", "VIRTUAL_ENV", "PYTHONPATH"))
    }
    env["UV_CACHE_DIR"] = UV_CACHE
    env.update(extra or {})
    return env


def run_in(
    python: Path,
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``llmcore ARGS`` from that environment, isolated from the user's config."""
    exe = python.parent / "llmcore"
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, cwd=cwd, env=_env(env), timeout=timeout
    )
