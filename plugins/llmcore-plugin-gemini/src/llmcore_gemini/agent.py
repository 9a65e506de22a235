"""Google's Gemini CLI (``gemini --prompt=… --output-format stream-json``) as an llmcore agent.

Gemini CLI takes an endpoint from ``GOOGLE_GEMINI_BASE_URL`` and a key from
``GEMINI_API_KEY``, but only once ``$HOME/.gemini/settings.json`` selects API-key auth. When
an endpoint is configured, the agent therefore runs with a ``HOME`` owned by llmcore that
holds that settings file (kept between runs, so ``--resume`` finds earlier sessions); the
user's own ``~/.gemini`` is neither read nor changed. The run is judged from Gemini's
``stream-json`` events (``init`` with the session id, ``message``, ``tool_use``,
``tool_result``, and the final ``result`` with its status, error and token stats), and from
the exit status (41: auth, 55: untrusted directory).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import attrs
import llmcore

#: llmcore mode -> ``--approval-mode``.
APPROVAL_MODES = {
    "read_only": "plan",  # read-only tools only
    "suggest": "default",  # headless: every tool needing approval is refused
    "auto_edit": "auto_edit",  # edit tools approved, shell refused
    "full_auto": "yolo",  # every tool approved
}
#: Sandbox runtimes Gemini CLI knows (``GEMINI_SANDBOX``).
SANDBOXES = ("docker", "podman", "sandbox-exec")
EXIT_AUTH = 41
EXIT_UNTRUSTED = 55
#: What ``-m`` gets when neither the task nor config names a model: without ``-m`` Gemini
#: CLI first asks a router model which model to use (one more request, one more failure).
DEFAULT_MODEL = "gemini-2.5-flash"


@attrs.define
class Options:
    """Keys under ``agents.NAME.options`` for a ``gemini`` agent."""

    #: ``HOME`` for the program. ``None``: llmcore's own one when an endpoint is configured
    #: (``base_url``/``api_key_env``), else the user's.
    home: str | None = None
    #: Pass ``--skip-trust`` (trust the working directory for this run); without it Gemini
    #: refuses to work in a folder the user never trusted (exit 55).
    trust_workspace: bool = True
    #: The model used when none is given (see :data:`DEFAULT_MODEL`).
    default_model: str = DEFAULT_MODEL
    #: Attempts per model request (``general.maxAttempts``, 1-10) in llmcore's own home;
    #: 1 makes a dead endpoint fail at once (Gemini's default of 10 retries for minutes).
    max_attempts: int = 1
    #: Run the agent's tools in a sandbox: ``docker``, ``podman`` or ``sandbox-exec`` (macOS);
    #: ``off`` (or unset): no sandbox. The runtime must be installed (checked before the run).
    sandbox: str | None = None
    #: Tools that run without asking (``run_shell_command(git status)``, ``write_file``…) and
    #: tools the model may never use: rules for Gemini's Policy Engine (``--policy``).
    allowed_tools: list[str] = attrs.field(factory=list)
    excluded_tools: list[str] = attrs.field(factory=list)


class GeminiAgent(llmcore.Agent):
    """Runs ``gemini --output-format stream-json --prompt=PROMPT``."""

    type_name = "gemini"
    program = "gemini"
    Options = Options
    own_env_keys = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_APPLICATION_CREDENTIALS")
    #: ``gemini --version`` takes ~2 s: the version comes from this package's package.json.
    npm_package = "@google/gemini-cli"

    def home_dir(self) -> Path | None:
        """The ``HOME`` llmcore gives the program, or ``None`` for the user's own."""
        return self.endpoint_home(self.options.home)

    # -- command line ------------------------------------------------------------------
    def build(self, task: llmcore.AgentTask) -> llmcore.Invocation:
        approval = APPROVAL_MODES.get(task.mode)
        if approval is None:
            raise llmcore.AgentError(
                f"{self.name}: unknown mode {task.mode!r}",
                agent=self.name,
                hint="use one of: " + ", ".join(APPROVAL_MODES),
            )
        opts: Options = self.options
        exe = self.executable() or self.program
        model = task.model or self.config.model or opts.default_model
        argv = [exe, "--output-format", "stream-json", "-m", model, "--approval-mode", approval]
        if opts.trust_workspace:
            argv.append("--skip-trust")
        if task.resume:
            argv += ["--resume", task.resume]
        sandbox_env = self._sandbox(argv)
        temp: list[str] = []
        if opts.allowed_tools or opts.excluded_tools:
            temp.append(self._policy_file(opts.allowed_tools, opts.excluded_tools))
            argv += ["--policy", temp[0]]
        # "--prompt=TEXT" in one argument: the text can never be read as a flag.
        argv += task.args
        stdin = None
        if self.prompt_fits_argv(task.prompt):
            argv.append(f"--prompt={task.prompt}")
        else:
            # -p is "appended to input on stdin": the long text goes by stdin.
            argv.append("--prompt= ")
            stdin = task.prompt.encode()
        env = {**self.config.env, **task.env, "GEMINI_CLI_NO_RELAUNCH": "true", **sandbox_env}
        if self.config.base_url:
            # Gemini CLI appends /v1beta/models/…: a base URL that has it would double it.
            env["GOOGLE_GEMINI_BASE_URL"] = llmcore.strip_url_suffix(
                self.config.base_url, ("/v1beta", "/v1")
            )
        if self.config.api_key_env:
            env["GEMINI_API_KEY"] = self.require_api_key(env)
        home = self.home_dir()
        if home is not None:
            _write_settings(home, opts.max_attempts)
            env.update(llmcore.home_env(home))
        return llmcore.Invocation(argv=argv, env=env, cwd=task.cwd, stdin=stdin, temp_files=temp)

    def _sandbox(self, argv: list[str]) -> dict[str, str]:
        """``--sandbox`` and ``GEMINI_SANDBOX`` for the configured runtime, after checking
        that it is installed (Gemini's own message comes only after its start-up)."""
        if self.options.sandbox is None:
            return {}  # the user's own GEMINI_SANDBOX / settings decide
        choice = self.options.sandbox.strip().lower()
        if choice in ("off", "none", "false", "no", ""):
            return {"GEMINI_SANDBOX": "false"}
        if choice not in SANDBOXES:
            raise llmcore.ConfigError(
                f"unknown sandbox {self.options.sandbox!r}",
                path=f"agents.{self.name}.options.sandbox",
                hint="use one of: " + ", ".join(SANDBOXES) + ", or off",
            )
        import shutil

        path = self.config.env.get("PATH") or os.environ.get("PATH")
        if shutil.which(choice, path=path) is None:
            raise llmcore.AgentError(
                f"{self.name}: the {choice} sandbox was asked for (options.sandbox), but "
                f"{choice!r} is not installed (not found on PATH)",
                agent=self.name,
                hint=f"install {choice}, or set agents.{self.name}.options.sandbox: off",
            )
        argv.append("--sandbox")
        return {"GEMINI_SANDBOX": choice}

    def _policy_file(self, allowed: list[str], excluded: list[str]) -> str:
        """A Policy Engine file: ``allowed`` run without asking, ``excluded`` are denied."""
        rules = []
        for names, decision, priority in ((allowed, "allow", 900), (excluded, "deny", 950)):
            for spec in names:
                tool, _, prefix = spec.partition("(")
                rule = [
                    f"toolName = {json.dumps(tool.strip())}",
                    f'decision = "{decision}"',
                    f"priority = {priority}",
                ]
                if prefix.rstrip(")").strip():
                    rule.append(f"commandPrefix = {json.dumps(prefix.rstrip(')').strip())}")
                if decision == "deny":
                    rule.append(
                        'denyMessage = "excluded by llmcore '
                        f'(agents.{self.name}.options.excluded_tools)"'
                    )
                rules.append("[[rule]]\n" + "\n".join(rule))
        import tempfile

        fd, path = tempfile.mkstemp(prefix="llmcore-gemini-policy-", suffix=".toml")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n\n".join(rules) + "\n")
        return path

    # -- output (one JSON event per line: the base class's parse_line) -----------------
    def finish(self, task: llmcore.AgentTask, run: llmcore.RunOutput) -> llmcore.AgentResult:
        session: str | None = None
        model: str | None = None
        final: list[str] = []  # assistant text since the last tool call: the answer
        result: dict[str, Any] | None = None
        for e in run.events:
            kind = e.get("type")
            if kind == "init":
                session = e.get("session_id") or session
                model = e.get("model") or model
            elif kind == "message" and e.get("role") == "assistant":
                if not e.get("delta"):
                    final = []
                final.append(str(e.get("content") or ""))
            elif kind in ("tool_use", "tool_result"):
                final = []
            elif kind == "result":
                result = e
        if result is None or result.get("status") != "success" or run.exit_code != 0:
            failure = (result or {}).get("error") or _last_json_error(run.stderr_tail)
            _raise_failure(self, run, failure)
        assert result is not None
        stats = result.get("stats") or {}
        return llmcore.AgentResult(
            agent=self.name,
            success=True,
            output="".join(final).strip(),
            files_modified=run.files_modified,
            duration_s=run.duration_s,
            exit_code=run.exit_code,
            usage=_usage(stats),
            session_id=session,
            events=run.events_total,
            model=model or task.model,
        )


def _raise_failure(agent: GeminiAgent, run: llmcore.RunOutput, failure: Any) -> None:
    if isinstance(failure, dict):
        text = str(failure.get("message") or failure)
    elif failure:
        text = str(failure)
    else:
        text = run.stderr_tail.strip()[-1000:] or agent.exit_error(run)
    name = agent.name
    if run.exit_code == EXIT_UNTRUSTED or ("trust" in text.lower() and "folder" in text.lower()):
        raise llmcore.AgentUntrustedError(
            f"{name}: Gemini CLI does not trust the working directory: {text[:300]}",
            agent=name,
            hint=f"set agents.{name}.options.trust_workspace: true, or trust the "
            "folder once in an interactive `gemini` session",
        )
    if "sandbox" in text.lower() and agent.options.sandbox:
        raise llmcore.AgentError(
            f"{name}: Gemini CLI could not start its {agent.options.sandbox} sandbox: "
            f"{' '.join(text.split())[:300]}",
            agent=name,
            hint=f"check that {agent.options.sandbox} works and can pull Gemini's sandbox "
            f"image, or set agents.{name}.options.sandbox: off",
        )
    err = agent.error_from_text(text, what="Gemini CLI failed")
    if err is None and run.exit_code == EXIT_AUTH:
        err = agent.error_from_text("401 " + text, what="Gemini CLI could not authenticate")
    raise err or llmcore.AgentFailedError(
        f"{name}: Gemini CLI failed (exit {run.exit_code}): {text[:300]}",
        agent=name,
        hint=f"check that agents.{name}.base_url serves the Gemini API (v1beta) and that the "
        "model exists there; run the same prompt with `gemini -p` to see more",
    )


def _usage(stats: dict[str, Any]) -> llmcore.Usage | None:
    if "input_tokens" not in stats and "output_tokens" not in stats:
        return None
    cached = int(stats.get("cached") or 0)
    return llmcore.Usage(
        input_tokens=int(stats.get("input_tokens") or 0),
        output_tokens=int(stats.get("output_tokens") or 0),
        cached_tokens=cached or None,
    )


def _last_json_error(text: str) -> Any:
    """The ``error`` of the last one-line JSON object on stderr (Gemini's error report)."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict) and value.get("error"):
                return value["error"]
    return None


def _write_settings(home: Path, max_attempts: int) -> None:
    """Make ``home/.gemini/settings.json`` select API-key auth and set the retry budget,
    keeping any other settings found there."""
    path = home / ".gemini" / "settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    before = json.dumps(data, sort_keys=True)
    data.setdefault("security", {}).setdefault("auth", {})["selectedType"] = "gemini-api-key"
    general = data.setdefault("general", {})
    general["maxAttempts"] = max(1, min(10, max_attempts))
    general["retryFetchErrors"] = max_attempts > 1
    if json.dumps(data, sort_keys=True) != before:
        path.write_text(json.dumps(data, indent=2), encoding="utf-8")
