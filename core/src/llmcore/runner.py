"""Run an agent's program: own process group, streamed lines, bounded memory, files changed.

The one place every agent plugin's process runs. Steps of :func:`run_agent_process`:

1. check the working directory and the program; optionally make a fresh git worktree;
2. record the directory's state (git status + content hashes, or a file snapshot);
3. start ``agent.build(task).argv`` (a list, never a shell string) in a new session/process
   group, with the user's environment less other providers' secrets, plus the agent's env;
4. read stdout and stderr as they come, line by line: parsed events go to ``on_event``; the
   last lines and a capped number of events are kept; everything is written to a log file;
5. on exit, timeout or cancel: SIGTERM to the whole group, SIGKILL after a grace period, so
   no process of the run survives it;
6. compute the files changed and let ``agent.finish`` judge the run.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import logging
import os
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs

from .agent_procs import ProcessTree
from .agent_worktrees import git_toplevel
from .errors import AgentCancelledError, AgentError, AgentNotFoundError, AgentTimeoutError

if TYPE_CHECKING:
    from .agents import Agent, CancelToken, EventCallback, Invocation
    from .types import AgentResult, AgentTask

log = logging.getLogger("llmcore.runner")

#: Seconds between SIGTERM and SIGKILL for the process group.
GRACE_S = 3.0
#: Bytes of the last stdout (and, separately, stderr) lines kept in memory.
TAIL_BYTES = 256 * 1024
#: Longest line handed to ``parse_line``; the rest of a longer line goes only to the log.
MAX_LINE = 4 * 1024 * 1024
#: Parsed events kept in memory: the first ``EVENTS_HEAD`` and the last ``MAX_EVENTS - head``.
MAX_EVENTS = 2000
EVENTS_HEAD = 100
#: The log file stops growing past this many bytes (a note says so); memory never grows.
LOG_MAX_BYTES = 256 * 1024 * 1024
#: Outside git: directories never walked, and the most files a snapshot looks at.
SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".cache",
        "dist",
        "build",
        "target",
        ".next",
        ".gradle",
    }
)
SNAPSHOT_MAX_FILES = 20000
HASH_MAX_BYTES = 8 * 1024 * 1024
_SECRET_NAME = re.compile(
    r"(API_?KEY|_TOKEN|TOKEN_|_SECRET|SECRET_|PASSWORD|ACCESS_KEY|"
    r"PRIVATE_KEY|CREDENTIALS?)\b|^(AWS|AZURE|GCP|GOOGLE_APPLICATION)_",
    re.I,
)


# -- environment --------------------------------------------------------------------------
@attrs.define
class RunOutput:
    """What the runner saw of one run, handed to :meth:`Agent.finish`.

    Memory is bounded: ``events`` keeps the first and the last parsed events up to a cap
    (``events_total`` counts them all); the tails keep the last lines up to a byte budget. The
    whole output is in the log file at ``log_path``.
    """

    exit_code: int | None
    events: list[dict[str, Any]]
    stdout_tail: str
    stderr_tail: str
    duration_s: float
    files_modified: list[str]
    timed_out: bool = False
    cancelled: bool = False
    events_total: int = 0
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    log_path: str | None = None
    worktree: str | None = None
    cwd: str = ""
    #: What was started (argv, env additions, ``meta``).
    invocation: Invocation | None = None


def missing_program(agent: Agent) -> AgentNotFoundError:
    return AgentNotFoundError(
        f"{agent.name}: program {agent.config.command or agent.program!r} was not found",
        agent=agent.name,
        hint=f"install it, or set agents.{agent.name}.command to its path",
    )


def agent_environment(
    agent: Agent,
    extra: dict[str, str] | None = None,
    unset: list[str] | None = None,
    base: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment the agent's process gets.

    The user's environment, less secret-looking variables (``*_API_KEY``, ``*_TOKEN``,
    ``*_SECRET``…) that are not this agent's own (``own_env_keys``, ``api_key_env`` or keys
    named in its configured ``env``) unless ``inherit_env: true``; then ``extra`` (what the
    plugin's build asked for), then the configured ``env`` (the user's word wins).
    """
    cfg = agent.config
    env = dict(os.environ if base is None else base)
    if not cfg.inherit_env:
        keep = {*agent.own_env_keys, *cfg.env}
        if cfg.api_key_env:
            keep.add(cfg.api_key_env)
        for name in list(env):
            if name not in keep and _SECRET_NAME.search(name):
                del env[name]
    for name in unset or ():
        env.pop(name, None)
    env.update(extra or {})
    env.update(cfg.env)
    return env


# -- files changed ------------------------------------------------------------------------
def _git(cwd: str, *args: str, check: bool = True) -> bytes:
    out = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, check=False, stdin=subprocess.DEVNULL
    )
    if check and out.returncode != 0:
        raise OSError(out.stderr.decode("utf-8", "replace").strip() or f"git {args[0]} failed")
    return out.stdout


class GitState:
    """HEAD, the dirty paths and their content hashes: enough to tell what a run changed."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.head = _git(root, "rev-parse", "--verify", "-q", "HEAD", check=False).decode().strip()
        self.dirty = self._dirty()
        self.hashes = self._hash(self.dirty)

    def _dirty(self) -> list[str]:
        raw = _git(
            self.root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames"
        )
        return [
            entry[3:]
            for entry in raw.decode("utf-8", "surrogateescape").split("\0")
            if len(entry) > 3
        ]

    def _hash(self, paths: list[str]) -> dict[str, str]:
        """Content hash of each path in the work tree; ``""`` when it does not exist."""
        present = [p for p in paths if os.path.isfile(os.path.join(self.root, p))]
        out: dict[str, str] = dict.fromkeys(paths, "")
        if present:
            raw = (
                subprocess.run(
                    ["git", "hash-object", "--no-filters", "--stdin-paths"],
                    cwd=self.root,
                    input="\n".join(present).encode(),
                    capture_output=True,
                    check=False,
                )
                .stdout.decode()
                .split()
            )
            out.update(zip(present, raw, strict=False))
        return out

    def changed_since(self) -> list[str]:
        """Paths whose content differs from before (new, modified, deleted, committed)."""
        now = GitState(self.root)
        candidates = set(self.dirty) | set(now.dirty)
        if self.head and now.head and now.head != self.head:
            candidates |= {
                p
                for p in _git(
                    self.root, "diff", "--name-only", "-z", "--no-renames", self.head, now.head
                )
                .decode()
                .split("\0")
                if p
            }
        before: dict[str, str] = {}
        clean_before = [p for p in candidates if p not in self.hashes]
        if clean_before and self.head:
            # A path clean before the run had HEAD's content (or did not exist).
            spec = "\n".join(f"{self.head}:{p}" for p in clean_before).encode()
            raw = (
                subprocess.run(
                    ["git", "cat-file", "--batch-check=%(objectname)"],
                    cwd=self.root,
                    input=spec + b"\n",
                    capture_output=True,
                    check=False,
                )
                .stdout.decode()
                .splitlines()
            )
            for p, line in zip(clean_before, raw, strict=False):
                before[p] = "" if line.endswith("missing") else line.strip()
        before.update(self.hashes)
        after = now._hash(sorted(candidates))
        return sorted(p for p in candidates if before.get(p, "") != after.get(p, ""))


class FileSnapshot:
    """Names, sizes and hashes of the files under a directory that is not a git repository."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.files = self._scan()

    def _scan(self) -> dict[str, tuple[int, str]]:
        files: dict[str, tuple[int, str]] = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
            for fn in filenames:
                full = os.path.join(dirpath, fn)
                try:
                    st = os.stat(full)
                except OSError:
                    continue
                rel = os.path.relpath(full, self.root)
                files[rel] = (st.st_size, _file_digest(full, st))
                if len(files) >= SNAPSHOT_MAX_FILES:
                    log.info("snapshot of %s stopped at %d files", self.root, len(files))
                    return files
        return files

    def changed_since(self) -> list[str]:
        now = self._scan()
        keys = set(self.files) | set(now)
        return sorted(k for k in keys if self.files.get(k) != now.get(k))


def _file_digest(path: str, st: os.stat_result) -> str:
    if st.st_size > HASH_MAX_BYTES:
        return f"mtime:{st.st_mtime_ns}"
    h = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return "unreadable"
    return h.hexdigest()


# -- output -------------------------------------------------------------------------------
class _Tail:
    """The last lines of a stream, up to a byte budget."""

    def __init__(self, budget: int) -> None:
        self.lines: collections.deque[str] = collections.deque()
        self.size = 0
        self.budget = budget

    def add(self, line: str) -> None:
        self.lines.append(line)
        self.size += len(line)
        while self.size > self.budget and len(self.lines) > 1:
            self.size -= len(self.lines.popleft())

    def text(self) -> str:
        return "".join(self.lines)


class _Collector:
    """Everything the two reader threads gather; memory bounded by construction."""

    def __init__(self, agent: Agent, on_event: EventCallback | None, log_file: IO[bytes]) -> None:
        self.agent = agent
        self.on_event = on_event
        self.log_file = log_file
        self.log_bytes = 0
        self.log_lock = threading.Lock()
        self.out = _Tail(TAIL_BYTES)
        self.err = _Tail(TAIL_BYTES)
        self.head: list[dict[str, Any]] = []
        self.tail: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=MAX_EVENTS - EVENTS_HEAD
        )
        self.events_total = 0
        self.out_bytes = 0
        self.err_bytes = 0
        self.callback_error: BaseException | None = None
        self.closed = False

    def close(self) -> None:
        """Close the log; a late reader's data is dropped, never written to a closed file."""
        with self.log_lock:
            self.closed = True
            self.log_file.close()

    def spill(self, data: bytes) -> None:
        with self.log_lock:
            if self.closed or self.log_bytes >= LOG_MAX_BYTES:
                return
            room = LOG_MAX_BYTES - self.log_bytes
            self.log_file.write(data[:room])
            self.log_bytes += min(len(data), room)
            if self.log_bytes >= LOG_MAX_BYTES:
                self.log_file.write(b"\n[llmcore: log truncated here; the run went on]\n")

    def stdout_line(self, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace")
        self.out.add(line)
        event = self.agent.parse_line(line.strip())
        if event is None:
            return
        self.events_total += 1
        if len(self.head) < EVENTS_HEAD:
            self.head.append(event)
        else:
            self.tail.append(event)
        if self.on_event is not None and self.callback_error is None:
            try:
                self.on_event(event)
            except Exception as exc:  # a broken progress display must not stop the run
                self.callback_error = exc
                log.warning("on_event callback failed; no more events sent to it: %s", exc)

    def stderr_line(self, raw: bytes) -> None:
        self.err.add(raw.decode("utf-8", "replace"))

    def events(self) -> list[dict[str, Any]]:
        return [*self.head, *self.tail]


def _pump(
    stream: IO[bytes], on_line: Any, collector: _Collector, which: str, stop: threading.Event
) -> None:
    """Read ``stream`` in blocks; hand complete lines to ``on_line``; spill all to the log.

    Ends at end of file, or once ``stop`` is set and nothing more is waiting: a process that
    escaped the run yet holds the pipe open can neither keep this thread alive nor make it
    write to a closed log.
    """
    import selectors

    fd = stream.fileno()
    buf = b""
    skipping = False  # inside an over-long line whose start was already handed on
    total = 0
    sel = selectors.DefaultSelector()
    try:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
        while True:
            if not sel.select(0.1):
                if stop.is_set():
                    break
                continue
            try:
                block = os.read(fd, 1 << 16)
            except BlockingIOError:
                continue
            if not block:
                break
            total += len(block)
            collector.spill(block)
            buf += block
            start = 0
            while True:
                nl = buf.find(b"\n", start)
                if nl < 0:
                    break
                if not skipping:
                    on_line(buf[start : nl + 1])
                skipping = False
                start = nl + 1
            buf = buf[start:]
            if len(buf) > MAX_LINE:
                if not skipping:
                    on_line(buf[:MAX_LINE])
                skipping = True
                buf = b""
        if buf and not skipping:
            on_line(buf)
    except (OSError, ValueError):
        pass
    finally:
        sel.close()
        if which == "out":
            collector.out_bytes = total
        else:
            collector.err_bytes = total
        with contextlib.suppress(OSError):
            stream.close()


#: Bytes a pipe to the program may hold (Linux ``F_SETPIPE_SZ``; the default is 64 KiB).
PIPE_BYTES = 1024 * 1024


def _widen_pipe(stream: IO[bytes] | None) -> None:
    """Let the pipe hold a whole long line. Node programs (Gemini CLI) that write one big
    event (the echo of a 300 KiB prompt) and exit at once lose what did not fit in the pipe:
    Node drops pending writes at exit. Best effort; Linux only."""
    if stream is None:
        return
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
    except (ImportError, OSError, ValueError):
        pass


def _feed(stream: IO[bytes], data: bytes) -> None:
    """Write the prompt to the program's stdin, then close it (a program that stops
    reading, or exits early, only ends the write)."""
    try:
        stream.write(data)
    except (OSError, ValueError):
        pass
    finally:
        with contextlib.suppress(OSError, ValueError):
            stream.close()


# -- process group (kept for callers of the earlier API) --------------------------------------
def stop_group(
    pgid: int, proc: subprocess.Popen[bytes] | None = None, grace: float = GRACE_S
) -> None:
    """Stop the process ``pgid`` started and everything it started (see
    :mod:`llmcore.agent_procs`): SIGTERM, then SIGKILL after ``grace`` s."""
    ProcessTree(pgid, tag="").stop(grace, proc.wait if proc is not None else None)


def _log_path(agent: Agent, run_id: str) -> Path:
    from .agent_logs import log_dir, prune_logs

    base = log_dir()
    prune_logs(
        base, max_age_days=agent.config.logs_keep_days, max_total_mb=agent.config.logs_max_mb
    )
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", agent.name)
    return base / f"{safe}-{run_id}.log"


def new_run_id() -> str:
    """``20261130-012345-1a2b3c``: sortable by time, unique (48 random bits)."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(3).hex()}"


#: Control characters a prompt may not hold (tab, newline and carriage return are fine).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_prompt(agent_name: str, prompt: str) -> None:
    """Raise :class:`~llmcore.errors.BadRequestError` for a prompt no program can take:
    empty, or holding NUL or other control bytes (argv and most programs cut or refuse it)."""
    from .errors import BadRequestError

    if not isinstance(prompt, str):
        raise BadRequestError(
            f"{agent_name}: the prompt must be text, not {type(prompt).__name__}",
            provider=agent_name,
        )
    bad = _CONTROL.search(prompt)
    if bad:
        raise BadRequestError(
            f"{agent_name}: the prompt holds the control character "
            f"{bad.group(0).encode('unicode_escape').decode()} at offset {bad.start()}; "
            "no agent program can receive it",
            provider=agent_name,
            hint="remove NUL and other control bytes from the prompt (tab, newline and "
            "carriage return are fine); for binary content, attach a file instead",
        )
    if not prompt.strip():
        raise BadRequestError(
            f"{agent_name}: the prompt is empty",
            provider=agent_name,
            hint="say what the agent should do (or pass --prompt-file)",
        )


#: The largest prompt file read (a task description, not a data set).
PROMPT_FILE_MAX = 8 * 1024 * 1024


def resolve_prompt(prompt: str | None, prompt_file: str | os.PathLike[str] | None) -> str:
    """The task text: ``prompt``, or the UTF-8 text of ``prompt_file`` (exactly one of them).

    Raises :class:`~llmcore.errors.BadRequestError` saying what is wrong (both or neither
    given, a file missing, unreadable, too large or not text).
    """
    from .errors import BadRequestError

    if prompt_file is None:
        if prompt is None:
            raise BadRequestError(
                "no prompt given", hint="pass the task as PROMPT or with --prompt-file FILE"
            )
        return prompt
    if prompt is not None:
        raise BadRequestError(
            "both a prompt and a prompt file were given",
            hint="pass one of them: PROMPT or --prompt-file FILE",
        )
    path = Path(os.path.expanduser(os.fspath(prompt_file)))
    try:
        size = path.stat().st_size
        if size > PROMPT_FILE_MAX:
            raise BadRequestError(
                f"prompt file {path} is {size} bytes; the most is {PROMPT_FILE_MAX}",
                hint="shorten it, or let the agent "
                "read the big file itself (name it in the prompt)",
            )
        data = path.read_bytes()
    except OSError as exc:
        raise BadRequestError(
            f"cannot read prompt file {path}: {exc.strerror or exc}",
            hint="check the path given to --prompt-file / prompt_file=",
        ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequestError(
            f"prompt file {path} is not UTF-8 text (byte {exc.start})", hint="save it as UTF-8"
        ) from None


def _open_log(path: Path) -> IO[bytes]:
    """The run's log, created 0600: it holds the prompt and what the model said."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o600)
    return os.fdopen(fd, "wb")


# -- the run ------------------------------------------------------------------------------
def run_agent_process(
    agent: Agent,
    task: AgentTask,
    on_event: EventCallback | None = None,
    cancel: CancelToken | None = None,
) -> AgentResult:
    """Run one task of ``agent`` to the end and return its :class:`AgentResult`.

    Raises :class:`~llmcore.errors.BadRequestError` (a prompt with control bytes),
    :class:`AgentNotFoundError` (no program), :class:`AgentError` (bad working directory),
    :class:`AgentTimeoutError`, :class:`AgentCancelledError`, or what the agent's ``finish``
    raised (auth, rate limit…). Each raised error carries the partial result in ``.result``
    when the program ran.
    """
    check_prompt(agent.name, task.prompt)
    from .config import normalize_mode

    if task.mode != normalize_mode(task.mode):
        import attrs

        task = attrs.evolve(task, mode=normalize_mode(task.mode))
    cwd = os.path.abspath(os.path.expanduser(task.cwd or "."))
    if not os.path.isdir(cwd):
        what = "is not a directory" if os.path.exists(cwd) else "does not exist"
        raise AgentError(
            f"{agent.name}: working directory {cwd} {what}",
            agent=agent.name,
            hint="pass an existing directory (--cwd DIR / cwd=...)",
        )
    if not agent.available():
        raise missing_program(agent)
    if agent.config.base_url:
        # A dead endpoint fails now, not after the program's own (often silent) retries.
        agent.check_endpoint()
    run_id = task.run_id or new_run_id()
    from .agent_worktrees import WorktreeInfo, prepare_worktree

    wt: WorktreeInfo | None = None
    isolation = task.isolation or agent.config.isolation
    if isolation == "worktree":
        wt = prepare_worktree(agent, cwd, run_id, resume=task.resume)
        cwd = wt.cwd
    elif isolation not in ("none", "", None):
        raise AgentError(
            f"{agent.name}: unknown isolation {isolation!r}",
            agent=agent.name,
            hint="use isolation: none or isolation: worktree",
        )
    task = _with_cwd(task, cwd)
    try:
        return _run_in(agent, task, run_id, wt, on_event, cancel)
    except AgentError as exc:
        if wt is not None and exc.result is not None:
            wt.fill(exc.result)
            if isinstance(exc, AgentCancelledError) and not exc.result.diff:
                # A cancelled run that changed nothing leaves no worktree behind.
                wt.discard()
                exc.result.worktree = exc.result.branch = None
        elif wt is not None and wt.created_now:
            wt.discard()
        raise
    except BaseException:
        if wt is not None:
            wt.settle_interrupted()  # kept if the agent changed something, else removed
        raise


def _run_in(
    agent: Agent,
    task: AgentTask,
    run_id: str,
    wt: Any,
    on_event: EventCallback | None,
    cancel: CancelToken | None,
) -> AgentResult:
    from .agent_procs import RUN_TAG_ENV, install_signal_handlers, subreaper

    cwd = task.cwd
    root = git_toplevel(cwd)
    before: GitState | FileSnapshot
    try:
        before = GitState(root) if root else FileSnapshot(cwd)
    except OSError as exc:
        log.warning("git state of %s unreadable (%s); using a file snapshot", cwd, exc)
        before = FileSnapshot(cwd)

    inv = agent.build(task)
    try:
        if not inv.argv or not all(isinstance(a, str) for a in inv.argv):
            raise AgentError(f"{agent.name}: the plugin built an invalid argv", agent=agent.name)
        env = agent_environment(agent, {**inv.env, **task.env}, inv.unset_env)
        env[RUN_TAG_ENV] = run_id
        timeout = task.timeout or agent.config.timeout
        log_path = _log_path(agent, run_id)
        install_signal_handlers()
        with subreaper():
            run = _spawn_and_wait(agent, inv, env, cwd, timeout, log_path, run_id, on_event, cancel)
    finally:
        for path in inv.temp_files:
            with contextlib.suppress(OSError):
                os.unlink(path)
    run.files_modified = _changed(agent, before)
    run.worktree = wt.root if wt is not None else None
    if run.timed_out or run.cancelled:
        stopped: AgentError = (
            AgentTimeoutError(
                f"{agent.name} ran past its timeout of {timeout:g}s and was "
                "stopped (with every process it started)",
                agent=agent.name,
                hint=f"raise --timeout or agents.{agent.name}.timeout; the "
                f"output so far is in {log_path}",
            )
            if run.timed_out
            else AgentCancelledError(
                f"{agent.name}: run cancelled; every process it started was stopped",
                agent=agent.name,
            )
        )
        stopped.result = _fill(_base_result(agent, task, run, stopped.message), run, run_id)
        raise stopped
    try:
        result = agent.finish(task, run)
    except AgentError as exc:
        if exc.result is None:
            exc.result = _fill(_base_result(agent, task, run, exc.message), run, run_id)
        raise
    result = _fill(result, run, run_id)
    if wt is not None:
        wt.fill(result)
    return result


def _spawn_and_wait(
    agent: Agent,
    inv: Invocation,
    env: dict[str, str],
    cwd: str,
    timeout: float,
    log_path: Path,
    run_id: str,
    on_event: EventCallback | None,
    cancel: CancelToken | None,
) -> RunOutput:
    from .agent_procs import register, unregister

    log_file = _open_log(log_path)
    collector = _Collector(agent, on_event, log_file)
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            inv.argv,
            cwd=cwd if inv.cwd in (".", "") else inv.cwd,
            env=env,
            stdin=subprocess.PIPE if inv.stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own session, hence its own process group
        )
    except OSError as exc:
        log_file.close()
        from .errors import AgentNotFoundError

        if getattr(exc, "errno", None) == 7:  # E2BIG: argv + environment too long
            raise AgentError(
                f"{agent.name}: the command line is too long for the system "
                f"({sum(len(a) for a in inv.argv)} bytes of arguments)",
                agent=agent.name,
                hint="pass long text with --prompt-file / prompt_file=, or shorten the "
                "configured args and env",
            ) from exc
        raise AgentNotFoundError(
            f"{agent.name}: could not start {inv.argv[0]!r}: {exc}",
            agent=agent.name,
            hint=f"check agents.{agent.name}.command",
        ) from exc
    tree = ProcessTree(proc.pid, run_id)
    register(tree, GRACE_S)
    for stream in (proc.stdout, proc.stderr):
        _widen_pipe(stream)
    stop_reading = threading.Event()
    assert proc.stdout is not None and proc.stderr is not None
    threads = [
        threading.Thread(
            target=_pump,
            args=(proc.stdout, collector.stdout_line, collector, "out", stop_reading),
            daemon=True,
            name=f"llmcore-{agent.name}-stdout",
        ),
        threading.Thread(
            target=_pump,
            args=(proc.stderr, collector.stderr_line, collector, "err", stop_reading),
            daemon=True,
            name=f"llmcore-{agent.name}-stderr",
        ),
    ]
    if inv.stdin is not None:
        assert proc.stdin is not None
        threads.append(
            threading.Thread(
                target=_feed,
                args=(proc.stdin, inv.stdin),
                daemon=True,
                name=f"llmcore-{agent.name}-stdin",
            )
        )
    exited = threading.Event()

    def wait_exit() -> None:
        # A thread blocked in wait() wakes at the exit itself; Popen.wait(timeout) polls
        # with sleeps and would add up to 50 ms to every run.
        with contextlib.suppress(Exception):
            proc.wait()
        exited.set()

    threads.append(
        threading.Thread(target=wait_exit, daemon=True, name=f"llmcore-{agent.name}-wait")
    )
    for t in threads:
        t.start()

    timed_out = cancelled = False
    try:
        deadline = start + timeout
        next_note = time.monotonic() + 0.2
        while True:
            if exited.wait(0.05 if cancel is not None else 0.25):
                break
            now = time.monotonic()
            if cancel is not None and cancel.is_set():
                cancelled = True
                break
            if now >= deadline:
                timed_out = True
                break
            if now >= next_note:
                tree.note()  # remember the tree: a detached grandchild is found later
                next_note = now + 0.5
    finally:
        # Whatever happened (exit, timeout, cancel, KeyboardInterrupt): nothing survives.
        try:
            tree.stop(GRACE_S, proc.wait)
        finally:
            unregister(tree)
            # Every writer is gone: the readers meet end of file at once. One that holds the
            # pipe from outside the run (another user's process) cannot keep them.
            for t in threads:
                t.join(timeout=1.0)
            stop_reading.set()
            for t in threads:
                t.join(timeout=2.0)
            collector.close()
    return RunOutput(
        exit_code=proc.returncode,
        events=collector.events(),
        stdout_tail=collector.out.text(),
        stderr_tail=collector.err.text(),
        duration_s=time.monotonic() - start,
        files_modified=[],
        timed_out=timed_out,
        cancelled=cancelled,
        events_total=collector.events_total,
        stdout_bytes=collector.out_bytes,
        stderr_bytes=collector.err_bytes,
        log_path=str(log_path),
        worktree=None,
        cwd=cwd,
        invocation=inv,
    )


def _with_cwd(task: AgentTask, cwd: str) -> AgentTask:
    import attrs

    return attrs.evolve(task, cwd=cwd)


def _changed(agent: Agent, before: GitState | FileSnapshot) -> list[str]:
    try:
        paths = before.changed_since()
    except OSError as exc:
        log.warning("could not list the files changed: %s", exc)
        return []
    import fnmatch

    pats = agent.ignored_files
    return [
        p
        for p in paths
        if not any(
            fnmatch.fnmatch(p, pat) or fnmatch.fnmatch(os.path.basename(p), pat) for pat in pats
        )
    ]


def _base_result(agent: Agent, task: AgentTask, run: RunOutput, error: str) -> AgentResult:
    from .types import AgentResult

    return AgentResult(agent=agent.name, success=False, output="", error=error, model=task.model)


def _fill(result: AgentResult, run: RunOutput, run_id: str | None = None) -> AgentResult:
    """Add what only the runner knows to a result a plugin built."""
    result.run_id = result.run_id or run_id
    result.duration_s = result.duration_s or run.duration_s
    if result.exit_code is None:
        result.exit_code = run.exit_code
    if not result.files_modified:
        result.files_modified = list(run.files_modified)  # already filtered by ignored_files
    result.events = result.events or run.events_total
    result.log_path = run.log_path
    result.worktree = run.worktree
    return result
