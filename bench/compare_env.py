"""Virtual environments for the libraries llmcore is compared with, kept out of .venv.

LiteLLM needs ``openai<3`` (the workspace uses openai 3.x) and pulls in boto3, tokenizers and
more (~290 MB); Simon Willison's ``llm`` conflicts with LiteLLM's pins. Each gets its own
venv under ``.ci-cache/``, made on first use with pip (about a minute each) and reused after.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".ci-cache"

#: name -> (venv dir, pinned requirement, module that must import)
ENVS = {
    # 1.100.0: newer LiteLLM releases need a certifi newer than the registry mirror here has
    "litellm": (CACHE / "bench-litellm", "litellm==1.100.0", "litellm"),
    "llm": (CACHE / "bench-llm", "llm==0.36", "llm"),
}


def python_for(name: str) -> Path | None:
    """The venv's python with ``name`` installed (installing it once), or None if it fails."""
    venv, requirement, module = ENVS[name]
    py = venv / "bin" / "python"
    if (
        py.exists()
        and subprocess.run([str(py), "-c", f"import {module}"], capture_output=True).returncode == 0
    ):
        return py
    print(
        f"[bench] installing {requirement} into {venv.relative_to(ROOT)} (once; about a minute)",
        file=sys.stderr,
    )
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [
                str(py),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                requirement,
            ],
            check=True,
        )
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"[bench] could not install {requirement}: {exc}", file=sys.stderr)
        return None
    return py
