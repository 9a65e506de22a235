"""llmcore plugin: Aider, run once with ``--message``.

Aider has no machine-readable output and exits 0 even when the model call failed or no edit
was applied, so a run is judged from what it printed (``Applied edit to FILE``, ``Tokens: N
sent, M received``, litellm error lines) and from the files that changed (git). Its chat
history goes to a file under llmcore's state directory named by a session id, so
``resume=session_id`` continues that chat and the user's repository gets no ``.aider.chat``
files.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections import deque
from pathlib import Path
from typing import Any

import attrs
import llmcore

LLMCORE_HOOK_API = "1"

FLAGS = [
    "--yes-always",
    "--no-check-update",
    "--no-analytics",
    "--no-show-model-warnings",
    "--no-pretty",
    "--no-stream",
    "--no-fancy-input",
    "--no-gitignore",
    "--no-show-release-notes",
]
#: llmcore's modes onto Aider's flags.
MODES: dict[str, list[str]] = {
    "read_only": ["--chat-mode", "ask", "--no-auto-commits", "--no-suggest-shell-commands"],
    "suggest": ["--dry-run", "--no-auto-commits", "--no-suggest-shell-commands"],
    "auto_edit": ["--no-auto-commits", "--no-suggest-shell-commands"],
    "full_auto": ["--no-auto-commits"],
}
_APPLIED = re.compile(r"^Applied edit to (.+?)\s*$", re.M)
_TOKENS = re.compile(
    r"^Tokens: ([\d.]+)(k?) sent(?:, ([\d.]+)(k?) cache \w+)*?.*?, ([\d.]+)(k?) "
    r"received",
    re.M,
)
_COST = re.compile(r"Cost: \$([\d.]+) message", re.M)
_FAILED_EDIT = re.compile(
    r"did not conform to the edit format|Failed to apply edit|"
    r"SearchReplaceNoExactMatch|Did not apply edit",
    re.I,
)
_ERROR_LINE = re.compile(
    r"litellm\.\w+Error|APIConnectionError|AuthenticationError|"
    r"RateLimitError|InternalServerError|ServiceUnavailableError|"
    r"NotFoundError|BadRequestError|Connection refused",
    re.I,
)
#: Aider's notice before it retries a failed model call (connection, 5xx, rate limit).
_RETRYING = re.compile(r"^Retrying in [\d.]+ seconds")
_WATCH_LOCK = threading.Lock()
#: Model prefixes litellm sends to Ollama's own API.
OLLAMA_PREFIXES = ("ollama", "ollama_chat")
_BANNER = (
    "Aider v",
    "Model:",
    "Main model:",
    "Weak model:",
    "Editor model:",
    "Git repo:",
    "Repo-map:",
    "Added ",
    "https://aider.chat",
    "Creating empty file",
    "Update git ",
    "Tokens:",
    "Cost:",
    "Applied edit to",
    "Use /help",
    "Restored previous",
    "Warning:",
    "You can skip this check",
    "Commit ",
    "Dry run enabled",
    "Did not apply edit",
)


@attrs.define
class AiderOptions:
    """``agents.NAME.options`` of an Aider agent."""

    #: ``--edit-format`` (whole, diff, udiff…); Aider picks one per model when unset.
    edit_format: str | None = None
    #: Files added to the chat on every run (paths relative to the working directory).
    files: list[str] = attrs.field(factory=list)
    #: "Retrying in N seconds" notices Aider may print before llmcore stops the run as a
    #: failure of the endpoint (Aider alone retries a dead endpoint for over a minute).
    #: ``0``: let Aider retry as long as it likes, up to the run's timeout.
    retry_notices: int = 1


class AiderAgent(llmcore.Agent):
    """Aider in one-shot mode; sessions are llmcore-kept chat-history files."""

    type_name = "aider"
    program = "aider"
    Options = AiderOptions
    own_env_keys = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
    #: Aider's own caches and histories in the repository are not "files the agent changed".
    ignored_files = (".aider*", ".aider.tags.cache.v4/*")

    def __init__(self, config: llmcore.AgentConfig) -> None:
        super().__init__(config)
        self._watches: list[_RetryWatch] = []

    def sessions_dir(self) -> Path:
        d = self.private_home().parent / "sessions"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def build(self, task: llmcore.AgentTask) -> llmcore.Invocation:
        opts: AiderOptions = self.options
        mode_flags = self.mode_setting(MODES, task.mode)
        session = task.resume or uuid.uuid4().hex
        if not re.fullmatch(r"[0-9a-f]{32}", session):
            raise llmcore.AgentError(
                f"{self.name}: {session!r} is not an Aider session id",
                agent=self.name,
                hint="pass the session_id a previous run returned",
            )
        history = self.sessions_dir() / f"{session}.chat.md"
        if task.resume and not history.exists():
            raise llmcore.AgentError(
                f"{self.name}: no saved session {session}",
                agent=self.name,
                hint="start a new run without resume",
            )
        argv = [
            self.executable() or self.program,
            *FLAGS,
            *mode_flags,
            "--chat-history-file",
            str(history),
            "--input-history-file",
            str(self.sessions_dir() / f"{session}.input"),
        ]
        env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "AIDER_CHECK_UPDATE": "false"}
        if task.resume:
            argv.append("--restore-chat-history")
        model = task.model
        if self.config.base_url and model and model.split("/", 1)[0] in OLLAMA_PREFIXES:
            # litellm reaches Ollama's own API (/api/chat) at OLLAMA_API_BASE, never through
            # --openai-api-base: an Ollama on another host is otherwise never reached.
            env["OLLAMA_API_BASE"] = llmcore.strip_url_suffix(self.config.base_url)
            env.update(llmcore.home_env(self.private_home()))
            _price_cache(self.private_home())
        elif self.config.base_url:
            argv += ["--openai-api-base", self.config.base_url]
            # The key goes by environment (Aider reads AIDER_OPENAI_API_KEY), never argv:
            # argv is visible to every user of the machine in the process list.
            env["AIDER_OPENAI_API_KEY"] = self.api_key() or "none"
            if model and "/" not in model:
                model = f"openai/{model}"
            home = self.private_home()
            env.update(llmcore.home_env(home))
            _price_cache(home)
        if model:
            argv += ["--model", model]
        if opts.edit_format:
            argv += ["--edit-format", opts.edit_format]
        argv += task.args
        # ``--message=TEXT`` is one token argparse reads as a value, whatever TEXT starts with.
        temp: list[str] = []
        if self.prompt_fits_argv(task.prompt):
            argv.append(f"--message={task.prompt}")
        else:
            temp.append(self.prompt_file(task.prompt))
            argv.append(f"--message-file={temp[0]}")
        # Files to edit come last, after "--" so none can be read as a flag.
        argv += ["--", *opts.files] if opts.files else []
        return llmcore.Invocation(argv=argv, env=env, meta={"session": session}, temp_files=temp)

    def run(
        self, task: llmcore.AgentTask, on_event: Any = None, cancel: Any = None
    ) -> llmcore.AgentResult:
        """Run ``task``; stop it at Aider's ``retry_notices``-th "Retrying in N seconds" and
        raise the error Aider was retrying (connection, rate limit…), as it would only
        report it after a minute of retries or not at all before the timeout."""
        limit = self.options.retry_notices
        if limit <= 0:
            return super().run(task, on_event, cancel)
        watch = _RetryWatch(cancel, limit)
        with _WATCH_LOCK:
            self._watches.append(watch)
        try:
            return super().run(task, on_event, watch)
        except llmcore.AgentCancelledError as exc:
            if watch.failure is None:
                raise
            err = self.retry_error(watch.failure)
            err.result = exc.result
            raise err from None
        finally:
            with _WATCH_LOCK:
                self._watches.remove(watch)

    def retry_error(self, text: str) -> llmcore.AgentError:
        """The error for a model call Aider was retrying, from the lines before its notice."""
        where = self.config.base_url or "the model endpoint"
        return self.error_from_text(
            text, what="Aider's model call failed and it was retrying"
        ) or llmcore.AgentConnectionError(
            f"{self.name}: Aider's model call to {where} failed and it was retrying: "
            f"{' '.join(text.split())[:300]}",
            agent=self.name,
            hint=f"check that {where} is up and that agents.{self.name}.base_url is right",
        )

    def finish(self, task: llmcore.AgentTask, run: llmcore.RunOutput) -> llmcore.AgentResult:
        out = run.stdout_tail
        session = run.invocation.meta.get("session") if run.invocation else task.resume
        applied = [m.strip() for m in _APPLIED.findall(out)]
        usage = _usage(out)
        cost_m = _COST.findall(out)
        both = (out + "\n" + run.stderr_tail).splitlines()
        first_error = next((i for i, ln in enumerate(both) if _ERROR_LINE.search(ln)), None)
        if first_error is not None and not applied and usage is None:
            # Aider wraps long lines: read from the first error line on, not line by line.
            text = " ".join(ln.strip() for ln in both[first_error : first_error + 12])
            raise (
                self.error_from_text(text, what="the model call failed")
                or llmcore.AgentFailedError(
                    f"{self.name}: {text[:300]}",
                    agent=self.name,
                    hint=f"see the full output in {run.log_path}",
                )
            )
        # In suggest mode (--dry-run) "Did not apply edit" is the point, not a failure.
        failed_edit = bool(_FAILED_EDIT.search(out)) and not applied and task.mode != "suggest"
        ok = run.exit_code == 0 and usage is not None and not failed_edit
        error = None
        if not ok:
            error = (
                "Aider could not apply the model's edit"
                if failed_edit
                else "Aider got no answer from the model"
                if usage is None
                else self.exit_error(run)
            )
        return llmcore.AgentResult(
            agent=self.name,
            success=ok,
            output=_answer(out),
            files_modified=run.files_modified or applied,
            exit_code=run.exit_code,
            usage=usage,
            cost_usd=float(cost_m[-1]) if cost_m else None,
            session_id=session,
            events=run.events_total,
            model=task.model,
            error=error,
        )

    def parse_line(self, line: str) -> dict[str, Any] | None:
        """Aider prints no JSON; its edit and token lines become progress events, and its
        retry notices trip the running :class:`_RetryWatch`."""
        if self._watches:
            # Runs of one agent object rarely overlap; when they do they share the
            # endpoint, so a retried call counts for each.
            with _WATCH_LOCK:
                for watch in self._watches:
                    watch.line(line)
        m = _APPLIED.match(line)
        if m:
            return {"type": "edit", "file": m.group(1)}
        if line.startswith("Tokens:"):
            return {"type": "usage", "text": line}
        return None


class _RetryWatch:
    """A cancel token for the runner that trips at Aider's ``limit``-th retry notice and
    keeps the error lines Aider printed before it."""

    def __init__(self, outer: Any, limit: int) -> None:
        self.outer = outer
        self.limit = limit
        self.count = 0
        self.recent: deque[str] = deque(maxlen=8)  # Aider wraps an error over a few lines
        self.failure: str | None = None

    def line(self, line: str) -> None:
        if _RETRYING.match(line):
            self.count += 1
            if self.count >= self.limit and self.failure is None:
                lines = list(self.recent)
                # From the error's first line on: what came before it is Aider's banner.
                start = max((i for i, ln in enumerate(lines) if _ERROR_LINE.search(ln)), default=0)
                self.failure = " ".join(lines[start:]) or line
            self.recent.clear()
        elif line:
            self.recent.append(line)

    def is_set(self) -> bool:
        return self.failure is not None or bool(self.outer is not None and self.outer.is_set())


def _num(value: str, k: str) -> int:
    return int(float(value) * (1000 if k else 1))


def _usage(out: str) -> llmcore.Usage | None:
    found = _TOKENS.findall(out)
    if not found:
        return None
    total_in = sum(_num(f[0], f[1]) for f in found)
    total_out = sum(_num(f[4], f[5]) for f in found)
    return llmcore.Usage(input_tokens=total_in, output_tokens=total_out)


def _answer(out: str) -> str:
    lines = [
        ln
        for ln in out.splitlines()
        if not ln.startswith(_BANNER) and not ln.startswith("HTTPSConnectionPool")
    ]
    return "\n".join(lines).strip()


def _price_cache(home: Path) -> None:
    """A non-empty model-price cache: Aider would otherwise try to fetch one from the
    internet on every start (a 5 s timeout where there is no network)."""
    cache = home / ".aider" / "caches" / "model_prices_and_context_window.json"
    if not cache.exists() or cache.stat().st_size < 3:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text('{"llmcore-placeholder": {}}')
    cache.touch()


@llmcore.hookimpl
def llmcore_register_agents() -> list[Any]:
    return [AiderAgent]
