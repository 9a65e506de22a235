"""The layering rules of docs/architecture.md, checked on the source: a plugin uses only
llmcore's public API (``import llmcore`` and ``llmcore.testing``), never another plugin; the
core never imports a plugin."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIRS = sorted((ROOT / "plugins").glob("llmcore-plugin-*"))
PLUGIN_MODULES = {next((d / "src").iterdir()).name for d in PLUGIN_DIRS}


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append(node.module)
    return out


def test_there_are_ten_plugins() -> None:
    assert len(PLUGIN_MODULES) == 11


def test_plugins_use_only_the_public_api_and_no_other_plugin() -> None:
    bad = []
    for d in PLUGIN_DIRS:
        own = next((d / "src").iterdir()).name
        for path in (d / "src").rglob("*.py"):
            for name in imports(path):
                top = name.split(".")[0]
                if top == "llmcore" and name not in ("llmcore",) and not name.startswith(
                        "llmcore.testing"):
                    bad.append(f"{path.relative_to(ROOT)}: imports {name}")
                if top in PLUGIN_MODULES and top != own:
                    bad.append(f"{path.relative_to(ROOT)}: imports another plugin {name}")
    assert bad == []


def test_the_core_never_imports_a_plugin() -> None:
    bad = [f"{p.relative_to(ROOT)}: {n}"
           for p in (ROOT / "core" / "src").rglob("*.py")
           for n in imports(p) if n.split(".")[0] in PLUGIN_MODULES]
    assert bad == []
