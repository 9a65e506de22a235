"""``llmcore``'s public names: loaded lazily, and visible to type checkers.

``__all__`` is written out by hand (mypy does not evaluate a computed one, and the
plugins, checked strictly, use these names), so it must stay equal to the lazy table; and
the ``TYPE_CHECKING`` imports must name the same objects the lazy loader returns.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import llmcore


def test_all_is_the_lazy_table_and_every_name_loads() -> None:
    assert sorted(llmcore.__all__) == sorted(["__version__", *llmcore._LAZY])
    assert len(set(llmcore.__all__)) == len(llmcore.__all__)
    for name, module in llmcore._LAZY.items():
        assert getattr(llmcore, name) is getattr(importlib.import_module(f"llmcore.{module}"), name)


def test_type_checkers_see_every_lazy_name_from_its_module() -> None:
    tree = ast.parse(Path(llmcore.__file__).read_text(encoding="utf-8"))
    seen: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom) and imp.level == 1
                for alias in imp.names:
                    seen[alias.asname or alias.name] = str(imp.module)
    assert seen == llmcore._LAZY
