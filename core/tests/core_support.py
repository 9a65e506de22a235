"""Helpers shared by the core tests."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmcore.testing.fakes import OpenAIFake


def make_dist(site: Path, dist: str, module: str, code: str, ep_name: str | None = None) -> None:
    """Write an installed-looking distribution (dist-info + module) into ``site``."""
    (site / f"{module}.py").write_text(textwrap.dedent(code))
    info = site / f"{dist.replace('-', '_')}-0.0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text(f"[llmcore]\n{ep_name or dist} = {module}\n")


def run_cli(
    *args: str, site: Path | None = None, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    if site is not None:
        full_env["PYTHONPATH"] = str(site) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "llmcore", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=120,
    )


def budget_config(a: OpenAIFake, b: OpenAIFake, db: Path, budget: str = "", glob: str = "") -> str:
    """Two providers (``pricey`` first, ``cheap`` second) with a budget on the first
    (``budget``) or on the whole routing (``glob``), metrics in the sqlite ``db``."""
    return f"""
providers:
  pricey:
    plugin: openai
    base_url: {a.base_url}
    models: [m]
    {budget}
  cheap:
    plugin: openai
    base_url: {b.base_url}
    models: [m]
routing:
  state: memory
  {glob}
metrics: {{sqlite: {{path: {db}}}}}
"""
