"""Start-up cost: ``import llmcore`` and ``llmcore --help`` against other libraries and CLIs.

Each measurement runs in a fresh subprocess, ``N`` times, and the median is reported:

* imports are timed inside the subprocess around the ``import`` statement alone (the
  interpreter's own start is the same for every library and is shown once as a reference);
* commands (``llmcore --help`` with the nine plugins installed, ``llm --help``) are timed
  from the outside, start to exit, as a user waits for them.

Python caches byte-code, so one unmeasured run comes first. LiteLLM and ``llm`` come from
their own venvs (:mod:`bench.compare_env`).

Budgets (issue 7): ``import llmcore`` ≤ 150 ms; ``llmcore --help`` ≤ 300 ms. The
``-X importtime`` profile of ``llmcore --help`` is summarised in a note (top packages by
cumulative import time), to show where the time goes.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import compare_env

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
IMPORT_SNIPPET = (
    "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("LLMCORE_CONFIG", None)  # no user config: the plugins' defaults, as on a fresh box
    # Users' Pythons cache bytecode; without this the warm-up run could not write it and every
    # measured start would include compiling click, attrs... (a sandbox here sets it).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # no network fetch at import
    return env


def time_import(python: str, module: str, n: int) -> float:
    code = IMPORT_SNIPPET.format(module=module)
    subprocess.run([python, "-c", code], capture_output=True, env=_env(), check=True)
    runs = []
    for _ in range(n):
        out = subprocess.run(
            [python, "-c", code], capture_output=True, text=True, env=_env(), check=True
        )
        runs.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(runs)


def time_command(argv: list[str], n: int, extra_env: dict[str, str] | None = None) -> float:
    env = {**_env(), **(extra_env or {})}
    subprocess.run(argv, capture_output=True, env=env, check=True, cwd=ROOT)
    runs = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(argv, capture_output=True, env=env, check=True, cwd=ROOT)
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def importtime_profile(top: int = 8) -> list[tuple[str, float]]:
    """Top-level packages by cumulative import time during ``llmcore --help``."""
    code = "import sys; sys.argv = ['llmcore', '--help']; from llmcore.cli import main; main()"
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
    )
    per_pkg: dict[str, float] = {}
    for line in out.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if not m:
            continue
        self_us, name = int(m.group(1)), m.group(4)
        per_pkg[name.split(".")[0]] = per_pkg.get(name.split(".")[0], 0.0) + self_us / 1e3
    return sorted(per_pkg.items(), key=lambda kv: -kv[1])[:top]


def run(quick: bool) -> list[dict]:
    n = 5 if quick else 15
    py = sys.executable
    rows: list[dict] = []

    def row(
        name: str,
        value: float | None,
        *,
        budget: str = "",
        met: bool | None = None,
        ratio: float | None = None,
        note: str = "",
    ) -> None:
        rows.append(
            {
                "group": "startup",
                "name": name,
                "value": None if value is None else value * 1e3,
                "unit": "ms",
                "ratio": ratio,
                "budget": budget,
                "met": met,
                "note": note or None,
            }
        )

    baseline = time_command([py, "-c", "pass"], n)
    row("python -c pass (interpreter start, reference)", baseline)
    llmcore_import = time_import(py, "llmcore", n)
    row("import llmcore", llmcore_import, budget="≤ 150 ms", met=llmcore_import <= 0.150)
    client_import = time_import(py, "llmcore.client", n)
    row("import llmcore.client (Client and its machinery)", client_import)
    helps = time_command([str(VENV_BIN / "llmcore"), "--help"], n)
    profile = importtime_profile()
    row(
        "llmcore --help (nine plugins installed)",
        helps,
        budget="≤ 300 ms",
        met=helps <= 0.300,
        note="-X importtime, self time by top-level package: "
        + ", ".join(f"{pkg} {ms:.0f} ms" for pkg, ms in profile),
    )
    bare = time_command([str(VENV_BIN / "llmcore"), "--help"], n, {"LLMCORE_PLUGINS": ""})
    row(
        "llmcore --help, no plugin loaded (LLMCORE_PLUGINS=)",
        bare,
        ratio=bare / helps,
        note=f"the nine plugins add {(helps - bare) * 1e3:.0f} ms",
    )
    openai_import = time_import(py, "openai", n)
    row("import openai", openai_import, ratio=openai_import / llmcore_import)
    litellm = compare_env.python_for("litellm")
    if litellm is not None:
        v = time_import(str(litellm), "litellm", n)
        row("import litellm", v, ratio=v / llmcore_import, note="litellm==1.100.0 in its own venv")
    else:
        row("import litellm", None, note="LiteLLM could not be installed")
    llm = compare_env.python_for("llm")
    if llm is not None:
        v = time_command([str(llm.parent / "llm"), "--help"], n)
        row("llm --help (Simon Willison's llm 0.36)", v, ratio=v / helps)
    else:
        row("llm --help", None, note="llm could not be installed")
    return rows
