"""The docs' links work when read from the checkout (a file viewer, an editor), not only on
the built site: every relative link in a page or README points at a file that exists."""

from __future__ import annotations

import re
from pathlib import Path

from packaging_support import PLUGINS, ROOT

# A markdown link or image whose target is relative (no scheme, not an anchor, not a path
# from the site root).
LINK = re.compile(r"!?\[[^\]]*\]\((?![a-z][a-z0-9+.-]*:|#|/)([^)\s]+)\)")


def _pages() -> list[Path]:
    return sorted(
        [
            *(ROOT / "docs").rglob("*.md"),
            ROOT / "README.md",
            ROOT / "CHANGELOG.md",
            *(ROOT / "plugins").glob("llmcore-plugin-*/README.md"),
        ]
    )


def _links(page: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.S | re.M)
    text = re.sub(r"`[^`\n]*`", "", text)  # code spans are not links
    return [m.group(1) for m in LINK.finditer(text)]


def test_every_relative_link_resolves_in_the_checkout() -> None:
    broken = []
    for page in _pages():
        for target in _links(page):
            path = target.split("#", 1)[0]
            if path and not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []


def test_the_plugin_options_stand_in_lists_every_plugin() -> None:
    """The committed page the site replaces links each plugin's README, so the checkout
    reader finds every plugin's keys."""
    page = ROOT / "docs" / "reference" / "plugin-options.md"
    linked = {t.split("/")[3] for t in _links(page) if t.startswith("../../plugins/")}
    assert linked == set(PLUGINS)
