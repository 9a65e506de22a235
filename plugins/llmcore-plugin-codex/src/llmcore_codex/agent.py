"""OpenAI Codex (``codex exec --json``) as an llmcore agent.

An endpoint from config (``base_url``, ``api_key_env``) becomes a custom Codex model provider
given with ``-c`` flags (Codex ignores ``OPENAI_BASE_URL``), and Codex then keeps its state in
a ``CODEX_HOME`` owned by llmcore, so the user's own ``~/.codex`` (login, config) is neither
read nor changed. The run is judged from Codex's JSONL events: ``thread.started`` (session id),
``item.completed`` (messages, commands, file changes), ``turn.completed`` (usage) and
``turn.failed`` / ``error`` (failure).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import attrs
import llmcore

#: llmcore mode -> Codex sandbox flags. ``exec`` never asks for approval, so the sandbox
#: alone decides what the agent may touch.
SANDBOX_FLAGS = {
    "read_only": ["-s", "read-only"],
    "suggest": ["-s", "read-only"],  # Codex cannot propose without applying: read only
    "auto_edit": ["-s", "workspace-write"],
    "full_auto": ["--dangerously-bypass-approvals-and-sandbox"],
}
PROVIDER_ID = "llmcore"
_WATCH_LOCK = threading.Lock()


@attrs.define
class Options:
    """Keys under ``agents.NAME.options`` for a ``codex`` agent."""

    #: Wire API of the endpoint: ``responses`` (``/v1/responses``; what Codex speaks best)
    #: or ``chat`` (``/v1/chat/completions``, older Codex releases only).
    wire_api: str = "responses"
    #: Codex state directory. ``None``: llmcore's own one when an endpoint is configured
    #: (``base_url``/``api_key_env``), else Codex's default (``~/.codex``).
    home: str | None = None
    #: Request and stream retries Codex makes before failing (0: fail at once).
    max_retries: int = 0
    #: "Reconnecting... waiting for network" notices tolerated before the run is stopped
    #: as a connection failure: Codex itself waits for the network forever.
    offline_notices: int = 1
    #: Extra ``-c key=value`` overrides, values as TOML (``{"model_reasoning_effort": "\"low\""}``).
    config: dict[str, str] = attrs.field(factory=dict)


class CodexAgent(llmcore.Agent):
    """Runs ``codex exec --json --skip-git-repo-check … -- PROMPT``."""

    type_name = "codex"
    program = "codex"
    Options = Options
    own_env_keys = ("OPENAI_API_KEY", "CODEX_API_KEY")
    npm_package = "@openai/codex"  # version from its package.json: no Node start-up

    def __init__(self, config: llmcore.AgentConfig) -> None:
        super().__init__(config)
        self._watches: list[_OfflineWatch] = []

    def home_dir(self) -> Path | None:
        """The ``CODEX_HOME`` llmcore uses for this agent, or ``None`` for Codex's own."""
        return self.endpoint_home(self.options.home, subdir=".codex")

    # -- command line ------------------------------------------------------------------
    def build(self, task: llmcore.AgentTask) -> llmcore.Invocation:
        sandbox = SANDBOX_FLAGS.get(task.mode)
        if sandbox is None:
            raise llmcore.AgentError(
                f"{self.name}: unknown mode {task.mode!r}",
                agent=self.name,
                hint="use one of: " + ", ".join(SANDBOX_FLAGS),
            )
        opts: Options = self.options
        exe = self.executable() or self.program
        argv = [exe, "exec", "--json", "--skip-git-repo-check", "-C", task.cwd, *sandbox]
        model = task.model or self.config.model
        if model:
            argv += ["-m", model]
        env = {**self.config.env, **task.env}
        overrides = {
            "analytics.enabled": "false",
            "check_for_update_on_startup": "false",
            **self._provider_overrides(env),
            **opts.config,
        }
        for key, value in overrides.items():
            argv += ["-c", f"{key}={value}"]
        argv += list(task.args)
        if task.resume:
            argv += ["resume", task.resume]
        stdin = None
        if self.prompt_fits_argv(task.prompt):
            argv += ["--", task.prompt]  # after "--" the prompt is never read as a flag
        else:
            argv += ["--", "-"]  # "-": Codex reads the instructions from stdin
            stdin = task.prompt.encode()
        home = self.home_dir()
        if home is not None:
            home.mkdir(parents=True, exist_ok=True)
            env["CODEX_HOME"] = str(home)
        return llmcore.Invocation(argv=argv, env=env, cwd=task.cwd, stdin=stdin)

    def _provider_overrides(self, env: dict[str, str]) -> dict[str, str]:
        """``-c`` overrides that define and select a provider for the configured endpoint."""
        cfg = self.config
        if not (cfg.base_url or cfg.api_key_env):
            return {}
        opts: Options = self.options
        if opts.wire_api not in ("responses", "chat"):
            raise llmcore.AgentError(
                f"{self.name}: options.wire_api must be 'responses' or 'chat', "
                f"not {opts.wire_api!r}",
                agent=self.name,
            )
        base = (cfg.base_url or "https://api.openai.com/v1").rstrip("/")
        if not base.endswith("/v1"):
            base += "/v1"  # Codex appends /responses to the provider's base URL
        p = f"model_providers.{PROVIDER_ID}"
        out = {
            "model_provider": _toml(PROVIDER_ID),
            f"{p}.name": _toml("llmcore"),
            f"{p}.base_url": _toml(base),
            f"{p}.wire_api": _toml(opts.wire_api),
            f"{p}.request_max_retries": str(opts.max_retries),
            f"{p}.stream_max_retries": str(opts.max_retries),
        }
        if cfg.api_key_env:
            key = self.require_api_key(env)
            # Codex reads the key itself from the variable named here; pass it explicitly so
            # it survives the runner's filtering of other providers' keys.
            out[f"{p}.env_key"] = _toml(cfg.api_key_env)
            env[cfg.api_key_env] = key
        return out

    # -- running -----------------------------------------------------------------------
    def run(
        self, task: llmcore.AgentTask, on_event: Any = None, cancel: Any = None
    ) -> llmcore.AgentResult:
        """Run ``task``; stop it as a connection failure when Codex starts waiting for the
        network (it would wait until the timeout)."""
        watch = _OfflineWatch(cancel, self.options.offline_notices)
        with _WATCH_LOCK:
            self._watches.append(watch)
        try:
            return super().run(task, on_event, watch)
        except llmcore.AgentCancelledError as exc:
            if watch.offline is None:
                raise
            where = self.config.base_url or "its model endpoint"
            err = llmcore.AgentConnectionError(
                f"{self.name}: Codex cannot reach {where}: {watch.offline}",
                agent=self.name,
                hint=f"check that {where} is up and that agents.{self.name}.base_url is right",
            )
            err.result = exc.result
            raise err from None
        finally:
            with _WATCH_LOCK:
                self._watches.remove(watch)

    # -- output ------------------------------------------------------------------------
    def parse_line(self, line: str) -> dict[str, Any] | None:
        event = super().parse_line(line)
        if event is None:
            return None
        if event.get("type") == "error" and "waiting for network" in str(event.get("message")):
            # Runs of one agent object normally do not overlap; when they do, they share
            # the endpoint, so an unreachable one fails them all.
            with _WATCH_LOCK:
                for watch in self._watches:
                    watch.notice(str(event.get("message")))
        return event

    def finish(self, task: llmcore.AgentTask, run: llmcore.RunOutput) -> llmcore.AgentResult:
        session: str | None = task.resume
        messages: list[str] = []
        usage: llmcore.Usage | None = None
        failure: str | None = None
        completed = False
        for e in run.events:
            kind = e.get("type")
            if kind == "thread.started":
                session = e.get("thread_id") or session
            elif kind == "item.completed":
                item = e.get("item") or {}
                if item.get("type") == "agent_message":
                    messages.append(str(item.get("text") or ""))
            elif kind == "turn.completed":
                completed = True
                u = e.get("usage") or {}
                usage = llmcore.Usage(
                    input_tokens=int(u.get("input_tokens") or 0),
                    output_tokens=int(u.get("output_tokens") or 0),
                    cached_tokens=u.get("cached_input_tokens") or None,
                    reasoning_tokens=u.get("reasoning_output_tokens") or None,
                )
            elif kind == "turn.failed":
                failure = str((e.get("error") or {}).get("message") or "turn failed")
            elif kind == "error" and not completed:
                failure = str(e.get("message") or failure or "error")
        if failure is not None or not completed:
            text = failure or run.stderr_tail.strip()[-1000:] or self.exit_error(run)
            err = self.error_from_text(text, what="Codex did not complete the turn")
            raise err or llmcore.AgentFailedError(
                f"{self.name}: Codex did not complete the turn: {text[:300]}",
                agent=self.name,
                hint="check that agents.NAME.base_url serves the OpenAI Responses API "
                "(POST /v1/responses) and that the model exists there",
            )
        ok = run.exit_code == 0
        return llmcore.AgentResult(
            agent=self.name,
            success=ok,
            output=messages[-1] if messages else "",
            files_modified=run.files_modified,
            duration_s=run.duration_s,
            exit_code=run.exit_code,
            usage=usage,
            session_id=session,
            events=run.events_total,
            model=task.model or self.config.model,
            error=None if ok else f"codex exited with status {run.exit_code}",
        )


class _OfflineWatch:
    """A cancel token for the runner that also trips after Codex's offline notices."""

    def __init__(self, outer: Any, limit: int) -> None:
        self.outer = outer
        self.limit = max(1, limit)
        self.count = 0
        self.offline: str | None = None

    def notice(self, message: str) -> None:
        self.count += 1
        if self.count >= self.limit:
            self.offline = message

    def is_set(self) -> bool:
        return self.offline is not None or bool(self.outer is not None and self.outer.is_set())


def _toml(value: str) -> str:
    """A TOML basic string (JSON escapes are valid TOML escapes for these characters)."""
    return json.dumps(value)
