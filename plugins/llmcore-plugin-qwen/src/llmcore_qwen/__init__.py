"""llmcore plugin: Qwen Code (``qwen``), run headless with ``--output-format stream-json``.

Qwen Code prints one JSON object per line: ``system/init`` (session id, tools), ``assistant``
and ``user`` turns (tool calls and results), and a final ``result`` with the answer, usage and
``is_error``/``error``. With ``base_url`` set, llmcore points it at any OpenAI-compatible
endpoint (``OPENAI_BASE_URL``, ``--auth-type openai``) from a HOME of its own, so the user's
``~/.qwen`` is never read or changed.
"""

from __future__ import annotations

from typing import Any

import attrs
import llmcore

LLMCORE_HOOK_API = "1"

#: llmcore's modes onto ``--approval-mode``. Headless ``default`` offers no write tools.
MODES = {"read_only": "plan", "suggest": "default", "auto_edit": "auto-edit", "full_auto": "yolo"}


DASHSCOPE_URL = "https://dashscope.aliyuncs.com/compatible-mode/v1"
AUTHS = ("oauth", "api_key", "openai")


@attrs.define
class QwenOptions:
    """``agents.NAME.options`` of a Qwen Code agent."""

    #: ``--bare``: skip start-up discovery (and the extra "memory" request).
    bare: bool = True
    #: ``--auth-type`` used with ``base_url``: openai | openai-responses | anthropic | gemini.
    auth_type: str = "openai"
    #: How Qwen Code signs in: ``oauth`` (Qwen's own login, kept in the user's ``~/.qwen``),
    #: ``api_key`` (a DashScope key from ``api_key_env``, no ``base_url`` needed) or
    #: ``openai`` (any OpenAI-compatible ``base_url``). Unset: ``openai`` with a
    #: ``base_url``, ``api_key`` with only ``api_key_env``, else Qwen's own settings.
    auth: str | None = None
    #: The endpoint ``auth: api_key`` uses (DashScope's OpenAI-compatible API; the
    #: international one is ``https://dashscope-intl.aliyuncs.com/compatible-mode/v1``).
    dashscope_url: str = DASHSCOPE_URL


class QwenAgent(llmcore.Agent):
    """Qwen Code, one prompt per run; resumable with its session id."""

    type_name = "qwen"
    program = "qwen"
    Options = QwenOptions
    own_env_keys = ("OPENAI_API_KEY", "DASHSCOPE_API_KEY", "QWEN_API_KEY")
    npm_package = "@qwen-code/qwen-code"  # version from its package.json: no Node start-up

    def build(self, task: llmcore.AgentTask) -> llmcore.Invocation:
        opts: QwenOptions = self.options
        argv = [
            self.executable() or self.program,
            "--output-format",
            "stream-json",
            "--approval-mode",
            self.mode_setting(MODES, task.mode),
        ]
        env = {"QWEN_CODE_NO_RELAUNCH": "1", "QWEN_CODE_SUPPRESS_YOLO_WARNING": "1"}
        if opts.bare:
            argv.append("--bare")
        if task.model:
            argv += ["-m", task.model]
        if task.resume:
            argv += ["--resume", task.resume]
        auth = self.auth()
        if auth == "oauth":
            # Qwen's OAuth state lives in the user's own ~/.qwen: their HOME, their login.
            argv += ["--auth-type", "qwen-oauth"]
        elif auth == "api_key":
            argv += ["--auth-type", "openai"]
            env.update(llmcore.home_env(self.private_home()))
            env.update(
                OPENAI_BASE_URL=self.config.base_url or opts.dashscope_url,
                OPENAI_API_KEY=self.require_api_key(hint="auth: api_key takes a DashScope key"),
            )
        elif self.config.base_url:
            argv += ["--auth-type", opts.auth_type]
            env.update(llmcore.home_env(self.private_home()))
            key = self.api_key() or "none"
            if opts.auth_type == "anthropic":
                env.update(ANTHROPIC_BASE_URL=self.config.base_url, ANTHROPIC_API_KEY=key)
            elif opts.auth_type == "gemini":
                env.update(GOOGLE_GEMINI_BASE_URL=self.config.base_url, GEMINI_API_KEY=key)
            else:
                env.update(OPENAI_BASE_URL=self.config.base_url, OPENAI_API_KEY=key)
        argv += task.args
        # ``--prompt=TEXT`` is one token yargs reads as a value: a prompt that starts with
        # "-" can never become a flag (qwen ignores positionals after "--").
        if self.prompt_fits_argv(task.prompt):
            argv.append(f"--prompt={task.prompt}")
            return llmcore.Invocation(argv=argv, env=env)
        # -p is "appended to input on stdin": the long text goes by stdin.
        argv.append("--prompt= ")
        return llmcore.Invocation(argv=argv, env=env, stdin=task.prompt.encode())

    def auth(self) -> str | None:
        """The effective ``auth`` (see :class:`QwenOptions`), or ``None`` for Qwen's own."""
        auth: str | None = self.options.auth  # options is Any on the Agent base
        if auth is None:
            if self.config.base_url:
                return "openai"
            return "api_key" if self.config.api_key_env else None
        if auth not in AUTHS:
            raise llmcore.ConfigError(
                f"unknown auth {auth!r}",
                path=f"agents.{self.name}.options.auth",
                hint="use one of: " + ", ".join(AUTHS),
            )
        if auth == "api_key" and not self.config.api_key_env:
            raise llmcore.ConfigError(
                "auth: api_key needs api_key_env (the variable holding the DashScope key)",
                path=f"agents.{self.name}.api_key_env",
                hint="e.g. api_key_env: DASHSCOPE_API_KEY",
            )
        if auth == "openai" and not self.config.base_url:
            raise llmcore.ConfigError(
                "auth: openai needs base_url",
                path=f"agents.{self.name}.base_url",
                hint="set the OpenAI-compatible endpoint, or use auth: api_key for DashScope",
            )
        return auth

    def finish(self, task: llmcore.AgentTask, run: llmcore.RunOutput) -> llmcore.AgentResult:
        result: dict[str, Any] | None = None
        session = None
        texts: list[str] = []
        for ev in run.events:
            session = ev.get("session_id") or session
            if ev.get("type") == "result":
                result = ev
            elif ev.get("type") == "assistant":
                for part in (ev.get("message") or {}).get("content") or []:
                    if isinstance(part, dict) and part.get("type") == "text":
                        texts.append(str(part.get("text", "")))
        if result is None:
            err = self.error_from_text(run.stderr_tail + run.stdout_tail[-2000:])
            if err is not None and run.exit_code != 0:
                raise err
            return llmcore.AgentResult(
                agent=self.name,
                success=False,
                output="\n".join(texts).strip(),
                exit_code=run.exit_code,
                session_id=session,
                events=run.events_total,
                files_modified=run.files_modified,
                model=task.model,
                error=self.exit_error(run) + " (no result event)",
            )
        usage_d = result.get("usage") or {}
        usage = llmcore.Usage(
            input_tokens=int(usage_d.get("input_tokens") or 0),
            output_tokens=int(usage_d.get("output_tokens") or 0),
            cached_tokens=usage_d.get("cache_read_input_tokens"),
        )
        is_error = bool(result.get("is_error")) or run.exit_code not in (0, None)
        error = None
        if is_error:
            msg = str(
                (result.get("error") or {}).get("message")
                or result.get("result")
                or result.get("subtype")
                or self.exit_error(run)
            )
            mapped = self.error_from_text(msg, what="the model call failed")
            if mapped is not None:
                raise mapped
            error = msg
        return llmcore.AgentResult(
            agent=self.name,
            success=not is_error,
            output=str(result.get("result") or "\n".join(texts)).strip(),
            files_modified=run.files_modified,
            exit_code=run.exit_code,
            usage=usage,
            cost_usd=result.get("total_cost_usd"),
            session_id=result.get("session_id") or session,
            events=run.events_total,
            error=error,
            model=task.model,
        )


@llmcore.hookimpl
def llmcore_register_agents() -> list[Any]:
    return [QwenAgent]
