"""Claude Code (``claude -p``) as an llmcore agent.

``build`` turns a task into a non-interactive ``claude`` command line that prints
``stream-json`` events (one JSON object per line, the last one the ``result``);
``finish`` reads that result object to judge the run, because ``claude`` reports an API
failure inside it (``is_error``) rather than only through its exit status.
"""

from __future__ import annotations

import os
from typing import Any

import attrs
import llmcore

#: llmcore mode -> Claude Code ``--permission-mode``.
PERMISSION_MODES = {
    "read_only": "plan",  # plans, reads; never edits or runs commands
    "suggest": "default",  # in -p mode every tool needing approval is refused
    "auto_edit": "acceptEdits",  # edits files; commands still refused
    "full_auto": "bypassPermissions",  # everything, no questions
}


@attrs.define
class Options:
    """Keys under ``agents.NAME.options`` for a ``claude-code`` agent."""

    #: Stop after this many agentic turns (``--max-turns``); ``None``: Claude's own limit.
    max_turns: int | None = None
    #: ``CLAUDE_CODE_MAX_RETRIES``: 0 makes a refused key or a dead server fail at once
    #: (llmcore does its own fallback); Claude's default retries for minutes.
    max_retries: int = 0
    #: Extra ``--allowedTools`` entries (e.g. ``"Bash(git diff:*)"``).
    allowed_tools: list[str] = attrs.field(factory=list)


class ClaudeCodeAgent(llmcore.Agent):
    """Runs ``claude -p PROMPT --output-format stream-json --verbose``."""

    type_name = "claude-code"
    program = "claude"
    Options = Options
    own_env_keys = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")
    #: The version comes from this package's package.json (no Node start-up).
    npm_package = "@anthropic-ai/claude-code"

    # -- command line ------------------------------------------------------------------
    def build(self, task: llmcore.AgentTask) -> llmcore.Invocation:
        exe = self.executable() or self.program
        mode = PERMISSION_MODES.get(task.mode)
        if mode is None:
            raise llmcore.AgentError(
                f"{self.name}: unknown mode {task.mode!r}",
                agent=self.name,
                hint="use one of: " + ", ".join(PERMISSION_MODES),
            )
        argv = [exe, "-p", "--output-format", "stream-json", "--verbose", "--permission-mode", mode]
        model = task.model or self.config.model
        if model:
            argv += ["--model", model]
        if task.resume:
            argv += ["--resume", task.resume]
        opts: Options = self.options
        if opts.max_turns:
            argv += ["--max-turns", str(opts.max_turns)]
        if opts.allowed_tools:
            argv += ["--allowedTools", *opts.allowed_tools]
        argv += task.args
        stdin = None
        if self.prompt_fits_argv(task.prompt):
            argv += ["--", task.prompt]  # after "--" the prompt is never a flag
        else:
            stdin = task.prompt.encode()  # -p with no prompt argument reads stdin
        env = {**self.config.env, **task.env, **self._endpoint_env()}
        env.setdefault("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        env.setdefault("DISABLE_AUTOUPDATER", "1")
        env.setdefault("CLAUDE_CODE_MAX_RETRIES", str(opts.max_retries))
        if mode == "bypassPermissions" and _is_root():
            # Claude refuses bypassPermissions as root unless told it runs in a sandbox;
            # full_auto is the user's explicit request for exactly that.
            env.setdefault("IS_SANDBOX", "1")
        return llmcore.Invocation(argv=argv, env=env, cwd=task.cwd, stdin=stdin)

    def _endpoint_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        if self.config.base_url:
            # Claude appends /v1/messages itself: a base URL ending in /v1 would double it.
            env["ANTHROPIC_BASE_URL"] = llmcore.strip_url_suffix(self.config.base_url)
        if self.config.api_key_env:
            env["ANTHROPIC_API_KEY"] = self.require_api_key(
                hint="or remove api_key_env to use Claude Code's own login"
            )
        return env

    # -- output ------------------------------------------------------------------------
    def finish(self, task: llmcore.AgentTask, run: llmcore.RunOutput) -> llmcore.AgentResult:
        result = next((e for e in reversed(run.events) if e.get("type") == "result"), None)
        if result is None:
            err = self.error_from_text(run.stderr_tail[-2000:], what="claude gave no result")
            raise err or llmcore.AgentFailedError(
                f"{self.name}: {self.exit_error(run)} without a result",
                agent=self.name,
                hint="run the same prompt with `claude -p` in that directory to see why",
            )
        text = str(result.get("result") or "")
        session = result.get("session_id")
        if result.get("is_error"):
            status = result.get("api_error_status")
            err = self.error_from_text(
                f"{status or ''} {text}".strip(), what="Claude Code's API call failed"
            )
            raise err or llmcore.AgentFailedError(
                f"{self.name}: Claude Code reported an error: {text[:300]}",
                agent=self.name,
                hint="check that agents.NAME.base_url serves the Anthropic Messages API and "
                "that the model exists there",
            )
        usage = _usage(result.get("usage") or {})
        models = list((result.get("modelUsage") or {}).keys())
        subtype = str(result.get("subtype") or "")
        ok = subtype == "success" and run.exit_code == 0
        return llmcore.AgentResult(
            agent=self.name,
            success=ok,
            output=text,
            files_modified=run.files_modified,
            duration_s=run.duration_s,
            exit_code=run.exit_code,
            usage=usage,
            cost_usd=_float(result.get("total_cost_usd")),
            session_id=session,
            events=run.events_total,
            model=models[0] if models else task.model,
            error=None if ok else f"claude stopped: {subtype or 'exit ' + str(run.exit_code)}",
        )


def _usage(u: dict[str, Any]) -> llmcore.Usage:
    cached = int(u.get("cache_read_input_tokens") or 0)
    created = int(u.get("cache_creation_input_tokens") or 0)
    # Anthropic's input_tokens leaves out the cached part; llmcore counts all input.
    return llmcore.Usage(
        input_tokens=int(u.get("input_tokens") or 0) + cached + created,
        output_tokens=int(u.get("output_tokens") or 0),
        cached_tokens=cached or None,
    )


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0
