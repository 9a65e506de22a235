"""The base class of agent plugins: what to start, how to read its output, how to judge it.

A plugin subclasses :class:`Agent` and implements :meth:`Agent.build` (argv + env for one
task), optionally :meth:`Agent.parse_line` (one output line to an event) and
:meth:`Agent.finish` (success, final text, usage, session id; or raise an
:class:`~llmcore.errors.AgentError` subclass that says what to do). The process itself is run
by :mod:`llmcore.runner`, the same for every agent.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import attrs

from .agent_support import npm_package_version
from .config import (
    AGENT_MODE_ALIASES,
    AGENT_MODES,
    AgentConfig,
    normalize_mode,
    structure_options,
)
from .errors import (
    AgentAuthError,
    AgentConnectionError,
    AgentError,
    AgentFailedError,
    AgentRateLimitError,
    ConfigError,
)

# Re-exported: code outside the core knows them as llmcore.agents names.
from .runner import RunOutput as RunOutput
from .runner import missing_program as missing_program
from .types import AgentResult, AgentTask

EventCallback = Callable[[dict[str, Any]], None]
T = TypeVar("T")

#: Longest prompt passed as one argument. Linux refuses any single argument over 128 KiB
#: (MAX_ARG_STRLEN); a longer prompt goes by stdin or a file, the way each program takes it.
ARGV_PROMPT_MAX = 96 * 1024
#: llmcore's modes, from the most careful to the most free, and their other names.
MODES = AGENT_MODES
MODE_ALIASES = AGENT_MODE_ALIASES


#: Flags seen by ``--version`` probes are cached per executable path for the process.
_VERSION_CACHE: dict[str, str] = {}
_VERSION_LOCK = threading.Lock()


class CancelToken(Protocol):
    """Anything with ``is_set()`` (a :class:`threading.Event` is one)."""

    def is_set(self) -> bool: ...


@attrs.define
class Invocation:
    """What to start: argv (never a shell string), extra environment, working directory.

    ``env`` is added on top of the user's (filtered) environment; ``unset_env`` names
    variables to remove. ``cwd`` defaults to the task's working directory.
    """

    argv: list[str]
    env: dict[str, str] = attrs.field(factory=dict)
    cwd: str = "."
    unset_env: list[str] = attrs.field(factory=list)
    #: Plugin-private facts for ``finish`` (e.g. a session id the plugin chose).
    meta: dict[str, Any] = attrs.field(factory=dict)
    #: Bytes written to the program's stdin, which is then closed (a long prompt); ``None``:
    #: stdin is ``/dev/null``.
    stdin: bytes | None = None
    #: Files the runner deletes when the run is over (a prompt file the plugin wrote).
    temp_files: list[str] = attrs.field(factory=list)


# Generic shapes of the failures every agent meets; plugins add their own before these.
_AUTH = re.compile(
    r"\b401\b|\b403\b|unauthori[sz]ed|invalid[ _-]?api[ _-]?key|incorrect api key|"
    r"authentication[ _-]?(error|failed)|api key not valid|permission denied.*key",
    re.I,
)
_RATE = re.compile(r"\b429\b|rate[ _-]?limit|too many requests|quota|resource[ _-]?exhausted", re.I)
_CONN = re.compile(
    r"ECONNREFUSED|connection refused|connect(ion)? ?error|failed to connect|"
    r"fetch failed|unable to connect|\b50[0234]\b|service unavailable|"
    r"internal server error|bad gateway|APIConnectionError|ENOTFOUND|"
    r"servers are down|overloaded",
    re.I,
)


class Agent:
    """One configured coding agent. Subclass it, set ``type_name`` and ``program``.

    ``own_env_keys`` names the secret variables of the user's environment this agent is
    allowed to see (its own provider's keys); every other ``*_API_KEY``/``*_TOKEN``-like
    variable is removed unless the config says ``inherit_env: true``.
    """

    type_name: ClassVar[str] = ""
    program: ClassVar[str] = ""
    kind: ClassVar[str] = "cli"
    Options: ClassVar[type | None] = None
    own_env_keys: ClassVar[tuple[str, ...]] = ()
    #: Files the program writes for itself (its history, caches): never reported as modified.
    ignored_files: ClassVar[tuple[str, ...]] = ()
    #: How ``--version`` is asked; some programs are slow to start, so it is cached.
    version_args: ClassVar[tuple[str, ...]] = ("--version",)
    #: The npm package the program comes from (``"@openai/codex"``): its version is read
    #: from the package's ``package.json`` next to the program, without starting Node.
    npm_package: ClassVar[str] = ""
    #: Whether the runner first checks that something listens at ``base_url``
    #: (:meth:`check_endpoint`); off for a program that does not connect there directly.
    check_endpoint_first: ClassVar[bool] = True

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.name = config.name or self.type_name
        self.options: Any = (
            structure_options(self.Options, config.options) if self.Options else None
        )
        self._version: str | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # -- discovery ---------------------------------------------------------------------
    def executable(self) -> str | None:
        """The program's path, from ``command:`` in config or PATH; ``None`` when missing.

        PATH is the one the agent will run with (the configured ``env: {PATH: ...}`` wins).
        """
        cmd = os.path.expanduser(self.config.command or self.program)
        if os.sep in cmd:
            return cmd if os.path.isfile(cmd) and os.access(cmd, os.X_OK) else None
        return shutil.which(cmd, path=self.config.env.get("PATH") or os.environ.get("PATH"))

    def available(self) -> bool:
        """Whether the program is there. Never raises."""
        try:
            return self.executable() is not None
        except Exception:
            return False

    def version(self) -> str | None:
        """The program's version text (first line of ``--version``), or ``None``. Never raises."""
        if self._version is None:
            try:
                exe = self.executable()
            except Exception:
                exe = None
            if not exe:
                return None
            with _VERSION_LOCK:
                cached = _VERSION_CACHE.get(exe)
            if cached is None:
                cached = self._probe_version(exe)
                with _VERSION_LOCK:
                    _VERSION_CACHE[exe] = cached
            self._version = cached
        return self._version or None

    def _probe_version(self, exe: str) -> str:
        if self.npm_package:
            found = npm_package_version(exe, self.npm_package)
            if found:
                return found
        env = dict(os.environ)
        env.update(self.config.env)
        try:
            out = subprocess.run(
                [exe, *self.version_args],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
                env=env,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        lines = [ln.strip() for ln in (out.stdout or out.stderr or "").splitlines() if ln.strip()]
        return self.clean_version(lines[-1] if lines else "")

    def clean_version(self, text: str) -> str:
        """Pull ``1.2.3`` out of a version line (``codex-cli 1.2.3`` → ``1.2.3``)."""
        m = re.search(r"\d+\.\d+(?:\.\d+)?(?:[-+.\w]*)?", text)
        return m.group(0) if m else text

    # -- what a plugin implements --------------------------------------------------------
    def build(self, task: AgentTask) -> Invocation:
        """Return the argv and environment that run ``task`` non-interactively."""
        raise NotImplementedError

    def parse_line(self, line: str) -> dict[str, Any] | None:
        """Turn one line of output into an event, or ``None``. Default: a JSON object line."""
        if not line.startswith("{"):
            return None
        try:
            value = json.loads(line)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def finish(self, task: AgentTask, run: RunOutput) -> AgentResult:
        """Judge the run: success, final text, usage, session id, error.

        Raise an :class:`~llmcore.errors.AgentError` subclass for a failure the user must fix
        (auth, rate limit, endpoint down); return ``success=False`` for a run that simply
        did not do the job.
        """
        ok = run.exit_code == 0 and not run.timed_out
        return AgentResult(
            agent=self.name,
            success=ok,
            error=None if ok else self.exit_error(run),
            output=run.stdout_tail.strip(),
            files_modified=run.files_modified,
            duration_s=run.duration_s,
            exit_code=run.exit_code,
            events=run.events_total,
            model=task.model,
        )

    def close(self) -> None:
        """Stop what the agent keeps running between runs (a server it started); called
        when the client closes. Default: nothing."""

    def effective_options(self) -> dict[str, Any]:
        """The options this agent runs with, defaults filled in (``llmcore agents --json``)."""
        if self.options is None:
            return {}
        return attrs.asdict(self.options) if attrs.has(type(self.options)) else {}

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment a process of this agent gets (the user's, less other providers'
        secrets, plus ``extra`` and the configured ``env``): for a helper process a plugin
        starts itself, such as a server."""
        from .runner import agent_environment

        return agent_environment(self, dict(extra or {}))

    # -- helpers plugins share -----------------------------------------------------------
    def run(
        self,
        task: AgentTask,
        on_event: EventCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> AgentResult:
        """Run ``task`` through :func:`llmcore.runner.run_agent_process`."""
        from .runner import run_agent_process

        return run_agent_process(self, task, on_event=on_event, cancel=cancel)

    def api_key(self) -> str | None:
        """The key named by ``api_key_env`` in this agent's config, from the environment."""
        env_name = self.config.api_key_env
        if not env_name:
            return None
        value = self.config.env.get(env_name) or os.environ.get(env_name)
        if value:
            from .secrets import register_secret

            register_secret(value)
        return value

    def private_home(self) -> Path:
        """A HOME of this agent's own under llmcore's state dir (kept, so sessions resume).

        Used when llmcore points the agent at an endpoint: the program's settings go there,
        and the user's own ``~/.config`` of that program is never touched.
        """
        import platformdirs

        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", self.name)
        home = Path(platformdirs.user_state_dir("llmcore")) / "agents" / safe / "home"
        home.mkdir(parents=True, exist_ok=True)
        return home

    def prompt_fits_argv(self, prompt: str) -> bool:
        """Whether ``prompt`` can go on the command line (:data:`ARGV_PROMPT_MAX`); when not,
        the plugin hands it over by stdin (``Invocation.stdin``) or a prompt file."""
        return len(prompt.encode("utf-8")) <= ARGV_PROMPT_MAX

    def prompt_file(self, prompt: str) -> str:
        """Write ``prompt`` to a private (0600) file for a program that reads its task from a
        file; list the path in ``Invocation.temp_files`` so the runner deletes it."""
        import tempfile

        fd, path = tempfile.mkstemp(prefix="llmcore-prompt-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(prompt)
        return path

    def mode_setting(self, table: Mapping[str, T], mode: str) -> T:
        """``table[mode]``: what llmcore's ``mode`` means for this program (its flags or
        permissions); a :class:`~llmcore.errors.ConfigError` naming the modes otherwise."""
        mode = normalize_mode(mode)
        if mode not in table:
            raise ConfigError(
                f"unknown mode {mode!r}",
                path=f"agents.{self.name}.mode",
                hint="use one of " + ", ".join(table),
            )
        return table[mode]

    def endpoint_configured(self) -> bool:
        """Whether llmcore points this agent at an endpoint (``base_url``/``api_key_env``)."""
        return bool(self.config.base_url or self.config.api_key_env)

    def endpoint_home(self, override: str | None = None, subdir: str = "") -> Path | None:
        """The home (or state directory) the program gets, or ``None`` for the user's own.

        ``override`` (an ``options.home`` the user set) wins; otherwise the agent's
        :meth:`private_home` (plus ``subdir``, e.g. ``".codex"``) when an endpoint is
        configured, since the user's own login and settings would point elsewhere; otherwise
        ``None``. The directory is not created.
        """
        if override:
            return Path(override).expanduser()
        if not self.endpoint_configured():
            return None
        home = self.private_home()
        return home / subdir if subdir else home

    def require_api_key(self, env: dict[str, str] | None = None, *, hint: str = "") -> str:
        """The key named by ``api_key_env`` (from config env, the environment, then ``env``).

        Raises :class:`~llmcore.errors.AgentError` saying which variable to export when it
        is unset; ``hint`` is appended to that advice. Call it only when ``api_key_env`` is
        configured.
        """
        var = self.config.api_key_env or ""
        key = self.api_key() or (env or {}).get(var)
        if not key:
            raise AgentError(
                f"{self.name}: environment variable {var} (agents.{self.name}.api_key_env) "
                "is not set",
                agent=self.name,
                hint=f"export {var}=<your key>" + (f", {hint}" if hint else ""),
            )
        return key

    def check_endpoint(self, timeout: float = 0.1) -> None:
        """Raise :class:`~llmcore.errors.AgentConnectionError` at once when nothing listens
        at the configured ``base_url``.

        The runner calls it before starting the program, because some programs (Qwen Code,
        OpenCode, Aider) retry a refused connection silently for minutes, so a dead endpoint
        would otherwise show up only as a timeout. Only a *refused* connection counts: a
        slow handshake (beyond ``timeout``), an unknown host name or a proxy in the way
        leave the verdict to the program, which may know better (proxy settings, DNS of its
        own). A plugin whose program never reaches ``base_url`` directly sets
        ``check_endpoint_first = False``.
        """
        url = self.config.base_url
        if not url or not self.check_endpoint_first:
            return
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(url if "//" in url else f"http://{url}")
            host, port = parts.hostname, parts.port
        except ValueError:
            return  # a malformed URL is the program's to report, in its own words
        if not host:
            return
        if port is None:
            port = 443 if parts.scheme == "https" else 80
        if not _is_loopback(host) and _proxy_configured(self.config.env):
            return  # the program connects through the proxy, not directly
        import socket

        try:
            with socket.create_connection((host, port), timeout=timeout):
                pass
        except ConnectionRefusedError:
            raise AgentConnectionError(
                f"{self.name}: nothing is listening at {url} (connection to {host}:{port} refused)",
                agent=self.name,
                hint=f"start the server at {url}, or fix agents.{self.name}.base_url",
            ) from None
        except OSError:
            return

    def exit_error(self, run: RunOutput) -> str:
        """``"claude exited with code 1: <last stderr line>"``: a failed run's one-line story."""
        code = run.exit_code
        how = (
            f"was killed by signal {-code}"
            if code is not None and code < 0
            else f"exited with code {code}"
        )
        last = next((ln.strip() for ln in reversed(run.stderr_tail.splitlines()) if ln.strip()), "")
        text = f"{self.program or self.name} {how}"
        return f"{text}: {last[:300]}" if last else text

    def error_from_text(self, text: str, *, what: str = "") -> AgentFailedError | None:
        """Map an error text the agent printed onto an error class with a hint, or ``None``."""
        where = self.config.base_url or "its model endpoint"
        snippet = " ".join(text.split())[:300]
        prefix = f"{self.name}: {what or 'the run failed'}: {snippet}"
        if _AUTH.search(text):
            key = self.config.api_key_env
            return AgentAuthError(
                prefix,
                agent=self.name,
                hint=(
                    f"check the key in ${key} for {where}"
                    if key
                    else f"set agents.{self.name}.api_key_env to the variable holding the key "
                    f"for {where}, or log in with {self.program} itself"
                ),
            )
        if _RATE.search(text):
            return AgentRateLimitError(
                prefix,
                agent=self.name,
                hint="the endpoint is rate limiting or out of quota: wait and retry, or use "
                "another model/provider",
            )
        if _CONN.search(text):
            return AgentConnectionError(
                prefix,
                agent=self.name,
                hint=f"check that {where} is up and that agents.{self.name}.base_url is right",
            )
        return None


def _is_loopback(host: str) -> bool:
    return host == "localhost" or host.startswith("127.") or host in ("::1", "[::1]")


def _proxy_configured(extra: Mapping[str, str]) -> bool:
    """Whether the agent's environment names an HTTP(S) proxy."""
    names = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")
    return any(extra.get(n) or os.environ.get(n) for n in names)
