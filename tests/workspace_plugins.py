"""The plugin list, read from the one place it is written: the root pyproject's
``[tool.uv.workspace] members`` (``plugins/*``), expanded against the tree.

Tests import :data:`PLUGIN_DIRS` / :data:`PLUGINS`; tox runs this file as a script to
install every plugin editable (``python tests/workspace_plugins.py install``), so adding a
plugin directory is the only step: no list in tox.ini, no list in a test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli below 3.11, so it is there wherever the tests run
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def _members() -> list[Path]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    dirs: list[Path] = []
    for pattern in data["tool"]["uv"]["workspace"]["members"]:
        dirs.extend(p for p in sorted(ROOT.glob(pattern)) if (p / "pyproject.toml").is_file())
    return dirs


#: Every plugin's directory, sorted (the workspace members under plugins/).
PLUGIN_DIRS: list[Path] = [p for p in _members() if p.parent.name == "plugins"]
#: Every plugin's distribution name (its directory name: tests/test_packaging.py checks it).
PLUGINS: list[str] = [p.name for p in PLUGIN_DIRS]


def main(argv: list[str]) -> int:
    if argv[:1] == ["install"]:
        args = [a for d in PLUGIN_DIRS for a in ("-e", str(d))]
        return subprocess.call([sys.executable, "-m", "pip", "install", *args])
    print("\n".join(PLUGINS))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
