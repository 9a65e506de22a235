"""Small helpers agent plugins share: npm versions, private homes, endpoint URLs.

Used by :class:`llmcore.Agent` and by agent plugins directly (the project's six and third
parties'), so each plugin keeps only what is particular to its program. Nothing here starts
a process or imports anything heavy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["home_env", "npm_package_version", "strip_url_suffix"]


def npm_package_version(exe: str, package: str) -> str | None:
    """The ``version`` of npm ``package`` whose files contain ``exe``, or ``None``.

    Follows symlinks (``node_modules/.bin/claude`` points into the package) and walks up to
    the first ``package.json`` named ``package``, stopping at ``node_modules``. Reading a
    file is ~1000x faster than starting Node for ``--version`` (Gemini CLI takes ~2 s).
    Never raises.
    """
    try:
        for parent in Path(os.path.realpath(exe)).parents:
            manifest = parent / "package.json"
            if manifest.is_file():
                data = json.loads(manifest.read_text(encoding="utf-8"))
                if isinstance(data, dict) and data.get("name") == package:
                    return str(data.get("version") or "") or None
            if parent.name == "node_modules":
                break
    except (OSError, ValueError):
        return None
    return None


def home_env(home: Path, *, xdg: bool = False) -> dict[str, str]:
    """Environment variables that make a program use ``home`` instead of the user's.

    ``xdg=True`` also points the XDG config, data, state and cache directories into it, for
    programs (OpenCode) that read those rather than ``$HOME/.config`` and friends.
    """
    env = {"HOME": str(home)}
    if xdg:
        env.update(
            XDG_CONFIG_HOME=str(home / ".config"),
            XDG_DATA_HOME=str(home / ".local/share"),
            XDG_STATE_HOME=str(home / ".local/state"),
            XDG_CACHE_HOME=str(home / ".cache"),
        )
    return env


def strip_url_suffix(url: str, suffixes: tuple[str, ...] = ("/v1",)) -> str:
    """``url`` without a trailing ``/`` and without the first matching API-version suffix.

    For programs that append their own ``/v1/...`` path to a base URL: a configured
    ``http://host/v1`` would otherwise become ``http://host/v1/v1/messages``.
    """
    url = url.rstrip("/")
    for suffix in suffixes:
        if url.endswith(suffix):
            return url[: -len(suffix)]
    return url
