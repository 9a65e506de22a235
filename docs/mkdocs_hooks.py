"""mkdocs hooks: pages made when the site is built, so they always match the code.

* ``guide/plugins/<name>.md``: one page per plugin, from ``plugins/llmcore-plugin-<name>/
  README.md`` (links relative to the README are turned into links to the source tree);
* ``reference/plugin-options.md``: each installed plugin's extra config keys;
* ``changelog.md``: the repository's ``CHANGELOG.md``.

A page may link to a file of the repository outside ``docs/`` (``../examples/demo.yaml``):
such links become links to the source tree, and any other broken link still fails
``mkdocs build --strict``.

Registered in ``mkdocs.yml`` under ``hooks:``.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SOURCE_URL = "https://llmcore.dev/source"

# A markdown link or image whose target is relative (no scheme, not an anchor).
_REL_LINK = re.compile(r"(!?\[[^\]]*\])\((?![a-z][a-z0-9+.-]*:|#|/)([^)\s]+)\)")


def plugin_pages() -> dict[str, str]:
    """``guide/plugins/<short>.md`` → its page text, for every plugin in the repository."""
    pages: dict[str, str] = {}
    for readme in sorted(ROOT.glob("plugins/llmcore-plugin-*/README.md")):
        dist = readme.parent.name
        short = dist.removeprefix("llmcore-plugin-")
        base = f"{SOURCE_URL}/plugins/{dist}"
        text = _REL_LINK.sub(
            lambda m, b=base: f"{m.group(1)}({b}/{m.group(2)})", readme.read_text(encoding="utf-8")
        )
        note = (
            f"\n\n---\n\nInstall: `llmcore install {short}` "
            f"(or `pip install {dist}`). This page is the plugin's README.\n"
        )
        pages[f"guide/plugins/{short}.md"] = text.rstrip() + note
    return pages


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    docs = Path(config["docs_dir"]).resolve()
    here = (docs / page.file.src_uri).parent

    def fix(m: re.Match[str]) -> str:
        target, _, anchor = m.group(2).partition("#")
        path = (here / target).resolve()
        if docs in path.parents or not path.is_relative_to(ROOT) or not path.exists():
            return m.group(0)
        plugin = _plugin_readme(path)
        if plugin is not None:  # a plugin's README is its page on the site
            page = docs / "guide" / "plugins" / f"{plugin}.md"
            rel = Path(os.path.relpath(page, here)).as_posix()
            return f"{m.group(1)}({rel}{'#' + anchor if anchor else ''})"
        url = f"{SOURCE_URL}/{path.relative_to(ROOT).as_posix()}"
        return f"{m.group(1)}({url}{'#' + anchor if anchor else ''})"

    return _REL_LINK.sub(fix, markdown)


def _plugin_readme(path: Path) -> str | None:
    """``claude-code`` for ``plugins/llmcore-plugin-claude-code/README.md``, else None."""
    rel = path.relative_to(ROOT).as_posix()
    m = re.fullmatch(r"plugins/llmcore-plugin-([a-z0-9-]+)/README\.md", rel)
    return m.group(1) if m else None


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    sys.path.insert(0, str(Path(__file__).parent))
    import gen_config

    generated = plugin_pages()
    generated["reference/plugin-options.md"] = gen_config.render_plugin_options()
    generated["changelog.md"] = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    for path, text in generated.items():
        # A committed stand-in (so links work when reading the checkout) gives way.
        old = files.get_file_from_path(path)
        if old is not None:
            files.remove(old)
        files.append(File.generated(config, path, content=text))
    return files
