"""The real program for these tests, installed by scripts/setup-agents.sh when missing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from agent_env import agent_path_value, ensure_agents, program_path


@pytest.fixture(scope="session")
def npm_program() -> Callable[[str], tuple[str, str]]:
    """``npm_program(name)`` -> (absolute path of the program, PATH with Node 22 first).

    Installs the programs first when any is missing (never a skip).
    """

    def find(name: str) -> tuple[str, str]:
        ensure_agents()
        return str(program_path(name)), agent_path_value()

    return find
