"""llmcore plugin: OpenCode (``opencode run --format json``).

OpenCode prints JSON lines: ``step_start``, ``text`` (``part.text``), ``tool_use``,
``step_finish`` (``part.tokens``, ``part.cost``) and ``error`` (``error.data.statusCode``),
each with ``sessionID``; there is no summary line, so the result is assembled from them. With
``base_url`` set, llmcore passes a whole provider config in ``OPENCODE_CONFIG_CONTENT`` and
runs it with XDG directories of its own, so the user's OpenCode config and data stay untouched.
"""

from __future__ import annotations

import json
import time
from typing import Any

import attrs
import llmcore

LLMCORE_HOOK_API = "1"

#: llmcore's modes onto OpenCode permissions (edit, bash) and its agent.
PERMISSIONS = {
    "read_only": {"edit": "deny", "bash": "deny", "webfetch": "deny"},
    "suggest": {"edit": "deny", "bash": "deny"},
    "auto_edit": {"edit": "allow", "bash": "deny"},
    "full_auto": {"edit": "allow", "bash": "allow", "webfetch": "allow"},
}


@attrs.define
class OpenCodeOptions:
    """``agents.NAME.options`` of an OpenCode agent."""

    #: The AI SDK package OpenCode uses for ``base_url``: an OpenAI-compatible server by
    #: default; ``@ai-sdk/anthropic`` for an Anthropic Messages endpoint.
    provider_npm: str = "@ai-sdk/openai-compatible"
    #: OpenCode's own agent (``build``, ``plan``…); read_only uses ``plan`` unless set.
    agent: str | None = None
    #: Run against an OpenCode server instead of starting OpenCode each time: its URL
    #: (``http://127.0.0.1:4096``), or ``auto`` (llmcore starts one ``opencode serve`` on a
    #: free loopback port, reuses it for every run, and stops it with the client).
    attach: str | None = None
    #: OpenCode's ``--continue``: go on with the last session (of this directory) when no
    #: session id is given to resume.
    continue_session: bool = False


class OpenCodeAgent(llmcore.Agent):
    """OpenCode, one message per run; resumable with its ``ses_…`` session id."""

    type_name = "opencode"
    program = "opencode"
    Options = OpenCodeOptions
    own_env_keys = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENCODE_API_KEY")
    npm_package = "opencode-ai"  # version from its package.json: no start-up

    def build(self, task: llmcore.AgentTask) -> llmcore.Invocation:
        opts: OpenCodeOptions = self.options
        permission = self.mode_setting(PERMISSIONS, task.mode)
        argv = [self.executable() or self.program, "run", "--format", "json"]
        env = {"OPENCODE_DISABLE_MODELS_FETCH": "1", "OPENCODE_DISABLE_AUTOUPDATE": "1"}
        config: dict[str, Any] = {
            "permission": permission,
            "autoupdate": False,
            "share": "disabled",
        }
        model = task.model
        if self.config.base_url:
            name = model or "default"
            env["LLMCORE_OPENCODE_KEY"] = self.api_key() or "none"
            config["provider"] = {
                "llmcore": {
                    "npm": opts.provider_npm,
                    "name": "llmcore",
                    "options": {
                        "baseURL": self.config.base_url,
                        "apiKey": "{env:LLMCORE_OPENCODE_KEY}",
                    },
                    "models": {name: {}},
                }
            }
            config["model"] = config["small_model"] = f"llmcore/{name}"
            model = f"llmcore/{name}"
            env.update(llmcore.home_env(self.private_home(), xdg=True))
        env["OPENCODE_CONFIG_CONTENT"] = json.dumps(config)
        if model:
            argv += ["-m", model]
        agent = opts.agent or ("plan" if task.mode == "read_only" else None)
        if agent:
            argv += ["--agent", agent]
        if task.mode in ("auto_edit", "full_auto"):
            argv.append("--auto")
        if task.resume:
            argv += ["-s", task.resume]
        elif opts.continue_session:
            argv.append("--continue")
        meta: dict[str, Any] = {}
        if opts.attach:
            url = self._attach_url(opts.attach, env, task.cwd)
            # --dir is a path on the server's side: the same machine, the same path.
            argv += ["--attach", url, "--dir", task.cwd]
            meta = {"attach": url, "since_ms": int(time.time() * 1000)}
        argv += task.args
        if self.prompt_fits_argv(task.prompt):
            argv += ["--", task.prompt]
            return llmcore.Invocation(argv=argv, env=env, meta=meta)
        # `opencode run` reads piped stdin as the message.
        return llmcore.Invocation(argv=argv, env=env, stdin=task.prompt.encode(), meta=meta)

    def _attach_url(self, attach: str, env: dict[str, str], cwd: str) -> str:
        if attach != "auto":
            if not attach.startswith(("http://", "https://")):
                raise llmcore.ConfigError(
                    f"attach must be a URL or auto, not {attach!r}",
                    path=f"agents.{self.name}.options.attach",
                    hint="e.g. attach: http://127.0.0.1:4096, or attach: auto",
                )
            return attach.rstrip("/")
        from .server import server_for

        return server_for(self.name, self.executable() or self.program, self.environment(env), cwd)

    def close(self) -> None:
        from .server import stop_servers

        stop_servers(self.name)

    def _server_events(
        self, url: str, run: llmcore.RunOutput, since_ms: int, session: str | None
    ) -> list[dict[str, Any]]:
        """The run's events read back from the server: ``opencode run --attach`` prints none
        of them (1.18), so the session's messages are fetched from the server's API and
        turned into the shapes ``run --format json`` prints."""
        import urllib.parse
        import urllib.request

        q = urllib.parse.urlencode({"directory": run.cwd})

        # No proxy: the server is ours, on this machine.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

        def get(path: str) -> Any:
            with opener.open(f"{url}{path}?{q}", timeout=30) as r:
                return json.loads(r.read())

        try:
            if session is None:
                sessions = [
                    s
                    for s in get("/session")
                    if isinstance(s, dict)
                    and ((s.get("time") or {}).get("updated") or 0) >= since_ms - 1000
                ]
                if not sessions:
                    return []
                session = max(sessions, key=lambda s: (s.get("time") or {}).get("updated", 0))["id"]
            messages = get(f"/session/{urllib.parse.quote(str(session))}/message")
        except (OSError, ValueError, KeyError) as exc:
            raise llmcore.AgentConnectionError(
                f"{self.name}: could not read the run back from the OpenCode server at "
                f"{url}: {exc}",
                agent=self.name,
                hint="check that the server is up (options.attach)",
            ) from None
        events: list[dict[str, Any]] = []
        for m in messages:
            info = m.get("info") or {}
            if (
                info.get("role") != "assistant"
                or ((info.get("time") or {}).get("created") or 0) < since_ms - 1000
            ):
                continue
            if info.get("error"):
                events.append({"type": "error", "error": info["error"], "sessionID": session})
            for part in m.get("parts") or []:
                kind = str(part.get("type", "")).replace("-", "_")
                if kind == "tool":
                    kind = "tool_use"
                events.append({"type": kind, "part": part, "sessionID": session})
        return events

    def finish(self, task: llmcore.AgentTask, run: llmcore.RunOutput) -> llmcore.AgentResult:
        meta = run.invocation.meta if run.invocation else {}
        if meta.get("attach") and not run.events and run.exit_code == 0:
            run = attrs.evolve(
                run,
                events=self._server_events(meta["attach"], run, int(meta["since_ms"]), task.resume),
            )
        session = None
        texts: list[str] = []
        usage = llmcore.Usage()
        cost = 0.0
        saw_cost = False
        errors: list[dict[str, Any]] = []
        for ev in run.events:
            session = ev.get("sessionID") or session
            kind = ev.get("type")
            part = ev.get("part") or {}
            if kind == "step_start":
                texts = []  # the answer is the text of the last step
            elif kind == "text":
                texts.append(str(part.get("text", "")))
            elif kind == "step_finish":
                tokens = part.get("tokens") or {}
                usage.input_tokens += int(tokens.get("input") or 0)
                usage.output_tokens += int(tokens.get("output") or 0)
                cached = int((tokens.get("cache") or {}).get("read") or 0)
                usage.cached_tokens = (usage.cached_tokens or 0) + cached
                if part.get("cost") is not None:
                    cost += float(part["cost"])
                    saw_cost = True
            elif kind == "error":
                errors.append(ev.get("error") or {})
        if errors:
            raise self._error(errors[-1], run)
        ok = run.exit_code == 0 and session is not None
        if not ok and run.exit_code != 0:
            mapped = self.error_from_text(run.stderr_tail[-3000:])
            if mapped is not None:
                raise mapped
        return llmcore.AgentResult(
            agent=self.name,
            success=ok,
            output="".join(texts).strip(),
            files_modified=run.files_modified,
            exit_code=run.exit_code,
            usage=usage if usage.total_tokens else None,
            cost_usd=cost if saw_cost else None,
            session_id=session,
            events=run.events_total,
            model=task.model,
            error=None if ok else self.exit_error(run),
        )

    def _error(self, err: dict[str, Any], run: llmcore.RunOutput) -> llmcore.AgentError:
        data = err.get("data") or {}
        status = data.get("statusCode")
        message = str(data.get("message") or err.get("name") or "error")
        text = f"{status or ''} {err.get('name', '')}: {message}"
        mapped = self.error_from_text(text, what="the model call failed")
        if mapped is not None:
            return mapped
        return llmcore.AgentFailedError(
            f"{self.name}: {text.strip()}",
            agent=self.name,
            hint=f"see the full output in {run.log_path}",
        )


@llmcore.hookimpl
def llmcore_register_agents() -> list[Any]:
    return [OpenCodeAgent]
