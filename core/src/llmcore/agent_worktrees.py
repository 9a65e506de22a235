"""``isolation: worktree``: a branch and a git worktree per run, its diff, merge and clean.

Each isolated run gets a branch ``llmcore/<agent>/<run id>`` made from the source checkout's
``HEAD`` and a worktree of it under ``<user state dir>/llmcore/worktrees/``. When the run
ends, what the agent changed is committed on that branch (the agent's own files, such as
Aider's ``.aider*``, left out), and the result carries the branch, the worktree path and the
diff against the starting commit. :func:`merge_run` brings the branch into the source
checkout (fast-forward when the checkout has not moved, a merge commit otherwise; a conflict
is aborted and reported, the branch kept); :func:`clean_runs` removes finished worktrees and
their branches by policy.

**Uncommitted changes in the source checkout are refused**, not carried: the agent starts
from ``HEAD``, and a change it never saw could not be merged back without a conflict of our
own making. Untracked files do not count (they are not in ``HEAD`` and a merge never touches
them). Commit or stash first, or run without isolation.

A record of every isolated run (``<state dir>/llmcore/agent-runs/<run id>.json``, 0600) ties
the run id to its checkout, branch, worktree and session id, so ``llmcore agent merge RUN``
works from another process and resuming a session reuses its run's worktree.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .errors import AgentError

if TYPE_CHECKING:
    from .agents import Agent
    from .types import AgentResult

#: The most bytes of diff kept on a result (the branch has all of it).
DIFF_MAX_BYTES = 1024 * 1024
KEEP_POLICIES = ("failed", "all", "none")
_GIT_ID = [
    "-c",
    "user.name=llmcore",
    "-c",
    "user.email=llmcore@localhost",
    "-c",
    "commit.gpgsign=false",
]


def git_toplevel(path: str) -> str | None:
    """The root of the git work tree holding ``path``, or ``None`` outside git."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=path,
            capture_output=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except OSError:
        return None
    return out.stdout.decode().strip() or None if out.returncode == 0 else None


#: git takes lock files for refs and worktree admin; parallel runs of one checkout (a batch)
#: make their worktrees and branches one at a time here, and retry a lock held elsewhere.
_REPO_LOCK = threading.Lock()


def _git(cwd: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    for attempt in range(5):
        out = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if out.returncode == 0 or ".lock" not in out.stderr or attempt == 4:
            break
        time.sleep(0.1 * (attempt + 1))
    if check and out.returncode != 0:
        raise OSError((out.stderr or out.stdout).strip() or f"git {args[0]} failed")
    return out


def _state_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_state_dir("llmcore"))


def runs_dir() -> Path:
    d = _state_dir() / "agent-runs"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


def branch_name(agent: str, run_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", agent).strip(".") or "agent"
    return f"llmcore/{safe}/{run_id}"


@attrs.define
class WorktreeInfo:
    """One isolated run's checkout: where, which branch, from which commit."""

    run_id: str
    agent: str
    source: str  # top of the user's checkout
    root: str  # top of the worktree
    cwd: str  # where the agent works (the same sub-directory as the user's cwd)
    branch: str
    base: str  # the commit the branch started from
    created_now: bool = True
    session_id: str | None = None
    success: bool | None = None
    finished: bool = False
    created: float = attrs.field(factory=time.time)
    pid: int = attrs.field(factory=os.getpid)  # the process running it
    ignored: list[str] = attrs.field(factory=list)

    # -- record ------------------------------------------------------------------------
    def save(self) -> None:
        data = attrs.asdict(self)
        data.pop("created_now", None)
        path = runs_dir() / f"{self.run_id}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)

    @classmethod
    def load(cls, run_id: str) -> WorktreeInfo | None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", run_id or ""):
            return None
        try:
            data = json.loads((runs_dir() / f"{run_id}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        fields = {a.name for a in attrs.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields}, created_now=False)

    def forget(self) -> None:
        with contextlib.suppress(OSError):
            (runs_dir() / f"{self.run_id}.json").unlink()

    # -- after the run -----------------------------------------------------------------
    def commit(self, message: str) -> None:
        """Commit everything the agent changed in the worktree (not its own files)."""
        _git(
            self.root, "add", "-A", "--", ".", *[f":(exclude,glob)**/{pat}" for pat in self.ignored]
        )
        staged = _git(self.root, "diff", "--cached", "--quiet", check=False).returncode
        if staged:
            _git(self.root, *_GIT_ID, "commit", "-q", "--no-verify", "-m", message)

    def diff(self) -> str:
        out = subprocess.run(
            ["git", "diff", "--binary", f"{self.base}..{self.branch}"],
            cwd=self.root,
            capture_output=True,
            check=False,
            stdin=subprocess.DEVNULL,
        ).stdout
        text = out[:DIFF_MAX_BYTES].decode("utf-8", "replace")
        if len(out) > DIFF_MAX_BYTES:
            text += (
                f"\n[llmcore: diff cut at {DIFF_MAX_BYTES} bytes; the branch "
                f"{self.branch} has all of it]\n"
            )
        return text

    def fill(self, result: AgentResult) -> None:
        """Commit the run's changes on its branch and put branch, worktree, diff on
        ``result``; record the run for merge, clean and resume."""
        first = (result.output or "").strip().splitlines()
        summary = f"llmcore: {self.agent} run {self.run_id}"
        if first:
            summary += f"\n\n{first[0][:200]}"
        try:
            self.commit(summary)
            result.diff = self.diff()
        except OSError as exc:
            result.diff = None
            result.error = result.error or f"could not commit the worktree's changes: {exc}"
        result.branch = self.branch
        result.worktree = self.root
        result.run_id = self.run_id
        self.session_id = result.session_id or self.session_id
        self.success = result.success
        self.finished = True
        self.save()

    def discard(self) -> None:
        remove_worktree(self)

    def settle_interrupted(self) -> None:
        """After an interrupted run (Ctrl-C, a signal): keep what the agent changed, as a
        failed run's branch, or remove the worktree when it changed nothing."""
        try:
            self.commit(f"llmcore: {self.agent} run {self.run_id} (interrupted)")
            changed = _git(self.root, "rev-parse", "HEAD").stdout.strip() != self.base
        except OSError:
            changed = True  # cannot tell: keep it, nothing is lost
        if not changed and self.created_now:
            self.discard()
            return
        self.success = False
        self.finished = True
        self.save()


def _dirty_tracked(root: str) -> list[str]:
    raw = _git(root, "status", "--porcelain=v1", "--untracked-files=no").stdout
    return [line[3:] for line in raw.splitlines() if line.strip()]


def prepare_worktree(
    agent: Agent, cwd: str, run_id: str, *, resume: str | None = None
) -> WorktreeInfo:
    """The worktree the run works in: the one of the run whose session ``resume`` names, or
    a new branch and worktree from ``HEAD`` of ``cwd``'s checkout."""
    if resume:
        earlier = find_run(session_id=resume, agent=agent.name)
        if earlier is not None and os.path.isdir(earlier.root):
            sub = os.path.relpath(os.path.realpath(cwd), os.path.realpath(earlier.source))
            where = os.path.join(earlier.root, sub) if not sub.startswith("..") else earlier.root
            earlier.cwd = where if os.path.isdir(where) else earlier.root
            earlier.created_now = False
            earlier.finished = False
            return earlier
    root = git_toplevel(cwd)
    if root is None:
        raise AgentError(
            f"{agent.name}: isolation: worktree needs a git repository, and {cwd} is not in one",
            agent=agent.name,
            hint="run in a git repository or set isolation: none",
        )
    head = _git(root, "rev-parse", "--verify", "-q", "HEAD", check=False).stdout.strip()
    if not head:
        raise AgentError(
            f"{agent.name}: isolation: worktree needs a commit to start from, and "
            f"{root} has none yet",
            agent=agent.name,
            hint="make a first commit, or set isolation: none",
        )
    dirty = _dirty_tracked(root)
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        raise AgentError(
            f"{agent.name}: {root} has uncommitted changes ({shown}); an isolated run starts "
            "from HEAD and would not see them",
            agent=agent.name,
            hint="commit or stash them first (git stash), or set isolation: none",
        )
    branch = branch_name(agent.name, run_id)
    dest = _state_dir() / "worktrees" / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', agent.name)}-{run_id}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _REPO_LOCK:
            _git(root, "worktree", "add", "-q", "-b", branch, str(dest), head)
    except OSError as exc:
        raise AgentError(
            f"{agent.name}: could not make a worktree of {root}: {exc}",
            agent=agent.name,
            hint="see `git worktree list`; `llmcore agent clean` removes old ones",
        ) from exc
    sub = os.path.relpath(os.path.realpath(cwd), os.path.realpath(root))
    info = WorktreeInfo(
        run_id=run_id,
        agent=agent.name,
        source=root,
        root=str(dest),
        cwd=str(dest / sub) if sub != "." else str(dest),
        branch=branch,
        base=head,
        ignored=list(agent.ignored_files),
    )
    info.save()
    return info


def list_runs() -> list[WorktreeInfo]:
    """Every recorded isolated run, oldest first."""
    runs = []
    for path in sorted(runs_dir().glob("*.json")):
        info = WorktreeInfo.load(path.stem)
        if info is not None:
            runs.append(info)
    return sorted(runs, key=lambda r: r.created)


def find_run(
    run_id: str | None = None, *, session_id: str | None = None, agent: str | None = None
) -> WorktreeInfo | None:
    if run_id:
        return WorktreeInfo.load(run_id)
    for info in reversed(list_runs()):
        if info.session_id == session_id and (agent is None or info.agent == agent):
            return info
    return None


@attrs.define
class MergeOutcome:
    """What :func:`merge_run` did: ``how`` is ``fast-forward``, ``merge`` or ``nothing``."""

    run_id: str
    branch: str
    source: str
    how: str
    commit: str
    files: list[str]

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def merge_run(run: str | AgentResult) -> MergeOutcome:
    """Bring an isolated run's branch into its source checkout.

    Fast-forward when the checkout's branch is still at the run's starting commit, a merge
    commit otherwise. A conflict, or local changes git would overwrite, is aborted and raised
    as :class:`~llmcore.errors.AgentError` naming the files: the checkout is left as it was
    and the branch kept, so nothing is lost.
    """
    run_id = run if isinstance(run, str) else (run.run_id or "")
    info = WorktreeInfo.load(run_id)
    if info is None:
        raise AgentError(
            f"no isolated run {run_id!r} is recorded",
            hint="pass the run_id of a run made with isolation: worktree "
            "(`llmcore agent runs` lists them)",
        )
    if _git(info.source, "rev-parse", "--verify", "-q", info.branch, check=False).returncode != 0:
        raise AgentError(
            f"run {run_id}: its branch {info.branch} no longer exists",
            hint="it was removed (llmcore agent clean, or by hand)",
        )
    tip = _git(info.source, "rev-parse", info.branch).stdout.strip()
    files = [
        f
        for f in _git(info.source, "diff", "--name-only", f"{info.base}..{tip}").stdout.splitlines()
        if f
    ]
    if _git(info.source, "merge-base", "--is-ancestor", tip, "HEAD", check=False).returncode == 0:
        return MergeOutcome(run_id, info.branch, info.source, "nothing", tip, files)
    head = _git(info.source, "rev-parse", "HEAD").stdout.strip()
    if (
        head == info.base
        or _git(info.source, "merge-base", "--is-ancestor", "HEAD", tip, check=False).returncode
        == 0
    ):
        out = _git(info.source, "merge", "--ff-only", "-q", info.branch, check=False)
        how = "fast-forward"
    else:
        out = _git(
            info.source,
            *_GIT_ID,
            "merge",
            "--no-ff",
            "--no-edit",
            "-q",
            "-m",
            f"Merge llmcore run {run_id} ({info.agent})",
            info.branch,
            check=False,
        )
        how = "merge"
    if out.returncode != 0:
        conflicts = [
            f
            for f in _git(
                info.source, "diff", "--name-only", "--diff-filter=U", check=False
            ).stdout.splitlines()
            if f
        ]
        if (
            _git(info.source, "rev-parse", "-q", "--verify", "MERGE_HEAD", check=False).returncode
            == 0
        ):
            _git(info.source, "merge", "--abort", check=False)
        detail = (
            f"conflicts in {', '.join(conflicts)}"
            if conflicts
            else " ".join((out.stderr or out.stdout).split())[:400]
        )
        raise AgentError(
            f"run {run_id}: could not merge {info.branch} into {info.source}: {detail}",
            hint="the checkout was left as it was and the branch "
            f"kept: merge it by hand (git merge {info.branch})",
        )
    commit = _git(info.source, "rev-parse", "HEAD").stdout.strip()
    return MergeOutcome(run_id, info.branch, info.source, how, commit, files)


def remove_worktree(info: WorktreeInfo) -> str | None:
    """Remove the run's worktree, branch and record; return the branch's last commit (the
    way back to it: ``git branch NAME COMMIT``), or ``None`` when there was no branch."""
    tip = None
    if os.path.isdir(info.source):
        tip = (
            _git(
                info.source, "rev-parse", "-q", "--verify", info.branch, check=False
            ).stdout.strip()
            or None
        )
        with _REPO_LOCK:
            _git(info.source, "worktree", "remove", "--force", info.root, check=False)
            _git(info.source, "branch", "-D", info.branch, check=False)
            _git(info.source, "worktree", "prune", check=False)
    if os.path.isdir(info.root):
        import shutil

        shutil.rmtree(info.root, ignore_errors=True)
    info.forget()
    return tip


def clean_runs(keep: str = "failed", *, source: str | None = None) -> list[dict[str, Any]]:
    """Remove finished isolated runs' worktrees and branches.

    ``keep``: ``failed`` keeps the worktrees of runs that failed (to look into) and removes
    the rest; ``all`` removes nothing; ``none`` removes every finished run. A run still going
    (not finished) is never touched. ``source`` limits it to runs of one checkout. Returns one
    entry per run removed, with its branch's last commit.
    """
    if keep not in KEEP_POLICIES:
        raise AgentError(
            f"unknown keep policy {keep!r}", hint="use keep: " + " | ".join(KEEP_POLICIES)
        )
    removed = []
    want = os.path.realpath(source) if source else None
    for info in list_runs():
        if want and os.path.realpath(info.source) != want:
            continue
        if not info.finished and _pid_alive(info.pid):
            continue  # still running
        if keep == "all" or (keep == "failed" and not info.success):
            continue
        tip = remove_worktree(info)
        removed.append(
            {
                "run_id": info.run_id,
                "agent": info.agent,
                "branch": info.branch,
                "worktree": info.root,
                "commit": tip,
                "success": info.success,
            }
        )
    return removed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
