"""Every hook is documented, has a docstring a plugin author can read alone, and is tested."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import pytest
from llmcore import hookspecs

ROOT = Path(__file__).resolve().parents[2]
HOOKS = [h.__name__ for h in hookspecs.ALL_HOOKS]


def test_all_hooks_listed() -> None:
    declared = {n for n, v in vars(hookspecs).items() if n.startswith("llmcore_") and callable(v)}
    assert declared == set(HOOKS)


@pytest.mark.parametrize("name", HOOKS)
def test_hook_has_a_full_docstring(name: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    assert len(doc) > 200, f"{name} needs a docstring that says when, what it gets, what it returns"
    assert "Called" in doc and ("Return" in doc or "return" in doc)


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_tested(name: str) -> None:
    own = Path(__file__).name
    texts = [p.read_text() for p in (ROOT / "core" / "tests").rglob("test_*.py") if p.name != own]
    texts += [p.read_text() for p in (ROOT / "tests").glob("test_*.py")]
    assert any(f"def {name}(" in t for t in texts), f"no test implements {name}"


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_documented(name: str) -> None:
    page = (ROOT / "docs" / "plugins" / "hooks.md").read_text()
    assert f"## `{name}`" in page


def test_hooks_page_is_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location("gen_hooks", ROOT / "docs" / "gen_hooks.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.PAGE.read_text() == module.render(), "run: python docs/gen_hooks.py"
