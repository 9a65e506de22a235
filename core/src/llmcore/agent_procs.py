"""Every process an agent run starts, found and stopped: no orphan, ever.

How a run's processes are found (Linux; elsewhere only the process group is used):

* **ancestry**: every process whose parent chain leads to the program llmcore started;
* **the process group** the program leads (it is started in a session of its own);
* **a tag in the environment**: the runner sets ``LLMCORE_AGENT_RUN=<run id>`` for the
  program, and every descendant inherits it, including one that called ``setsid()`` and whose
  parent has died (its ancestry is then broken: it was reparented);
* **what was seen earlier**: while the run goes on, the runner notes the tree every half
  second (pid and start time, so a reused pid is never mistaken), which catches a detached
  grandchild that also cleared its environment.

While any run is active the Python process is a *child subreaper*
(``prctl(PR_SET_CHILD_SUBREAPER)``): an orphaned descendant is reparented to us rather than
to init, so it stays in our tree and its zombie is ours to reap. We chose this over a cgroup
because cgroup v2 delegation needs a writable cgroup (systemd user slice or root), which a
library cannot count on; the subreaper needs no privilege. The flag is cleared again when the
last run ends, so a program embedding llmcore is affected only while an agent runs.

Stopping (:meth:`ProcessTree.stop`): SIGTERM to every live member, new members included as
they appear, then SIGKILL to what is left after the grace period; our own zombies among them
are reaped. :func:`install_signal_handlers` makes SIGTERM and SIGHUP stop every active run
before the process dies of them, and an ``atexit`` hook does the same at interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("llmcore.runner")

#: The environment variable that tags every process of one run.
RUN_TAG_ENV = "LLMCORE_AGENT_RUN"
_PR_SET_CHILD_SUBREAPER = 36
_LINUX = sys.platform.startswith("linux") and os.path.isdir("/proc")

#: pid -> (ppid, pgid, state, start time in clock ticks)
ProcTable = dict[int, tuple[int, int, str, int]]


def proc_table() -> ProcTable:
    """Every process of the machine we can see, from ``/proc/*/stat``."""
    table: ProcTable = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return table
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces and ")": the fields start after the last ")".
        fields = stat[stat.rfind(b")") + 2 :].split()
        try:
            table[int(name)] = (int(fields[1]), int(fields[2]), fields[0].decode(), int(fields[19]))
        except (IndexError, ValueError):
            continue
    return table


def _tagged(pid: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return needle in f.read().split(b"\0")
    except OSError:
        return False


# -- child subreaper ------------------------------------------------------------------------
_reaper_lock = threading.Lock()
_reaper_users = 0


def _prctl_subreaper(on: bool) -> bool:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


@contextlib.contextmanager
def subreaper() -> Any:
    """Be a child subreaper while the block runs (counted: nested and parallel runs share)."""
    global _reaper_users
    if not _LINUX:
        yield
        return
    with _reaper_lock:
        _reaper_users += 1
        if _reaper_users == 1 and not _prctl_subreaper(True):
            log.debug("prctl(PR_SET_CHILD_SUBREAPER) failed; relying on tags and groups")
    try:
        yield
    finally:
        with _reaper_lock:
            _reaper_users -= 1
            if _reaper_users == 0:
                _prctl_subreaper(False)


# -- one run's processes ----------------------------------------------------------------------
class ProcessTree:
    """The processes of one run: the program (``leader``) and everything it started."""

    def __init__(self, leader: int, tag: str) -> None:
        self.leader = leader
        self.tag = tag
        self._needle = f"{RUN_TAG_ENV}={tag}".encode()
        #: pid -> start time of every process seen in the tree so far.
        self.seen: dict[int, int] = {}
        self._lock = threading.Lock()

    def members(self, table: ProcTable | None = None, *, by_tag: bool = True) -> ProcTable:
        """The run's processes now (zombies included), never ourselves."""
        if not _LINUX:
            return {}
        table = proc_table() if table is None else table
        me = os.getpid()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _pgid, _state, _start) in table.items():
            children.setdefault(ppid, []).append(pid)
        roots = {self.leader} if self.leader in table else set()
        roots |= {pid for pid, row in table.items() if row[1] == self.leader}
        with self._lock:
            roots |= {
                pid for pid, start in self.seen.items() if pid in table and table[pid][3] == start
            }
        if by_tag and self.tag:
            roots |= {pid for pid in table if pid != me and _tagged(pid, self._needle)}
        found: ProcTable = {}
        stack = list(roots)
        while stack:
            pid = stack.pop()
            if pid in found or pid == me or pid not in table:
                continue
            found[pid] = table[pid]
            stack.extend(children.get(pid, ()))
        return found

    def note(self) -> None:
        """Remember the tree as it is now (cheap: no environment is read)."""
        found = self.members(by_tag=False)
        with self._lock:
            self.seen.update({pid: row[3] for pid, row in found.items()})

    def alive(self) -> list[int]:
        """Live (non-zombie) members."""
        return [pid for pid, row in self.members().items() if row[2] not in ("Z", "X")]

    def stop(self, grace: float, leader_wait: Callable[[], object] | None = None) -> None:
        """SIGTERM every member (new ones too), SIGKILL what is left after ``grace`` s."""
        self._signal_group(signal.SIGTERM)
        if not _LINUX:
            self._stop_group_only(grace, leader_wait)
            return
        if not self.alive():  # the usual end: the program exited and left nothing
            if leader_wait is not None:
                with contextlib.suppress(Exception):
                    leader_wait()
            self._reap()
            return
        deadline = time.monotonic() + grace
        termed: set[int] = set()
        delay = 0.005
        while True:
            live = self.alive()
            if not live:
                break
            for pid in live:
                if pid not in termed:
                    termed.add(pid)
                    _kill(pid, signal.SIGTERM)
            if time.monotonic() >= deadline:
                break
            self._reap()
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        # Whatever is still alive gets SIGKILL, again and again while it forks.
        deadline = time.monotonic() + 10.0
        while True:
            live = self.alive()
            if not live:
                break
            self._signal_group(signal.SIGKILL)
            for pid in live:
                _kill(pid, signal.SIGKILL)
            self._reap()
            if time.monotonic() >= deadline:
                log.warning(
                    "processes %s of agent run %s did not die after SIGKILL", live, self.tag
                )
                break
            time.sleep(0.01)
        if leader_wait is not None:
            with contextlib.suppress(Exception):
                leader_wait()
        self._reap()

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.leader, sig)

    def _stop_group_only(self, grace: float, leader_wait: Callable[[], object] | None) -> None:
        """The portable fallback: the process group alone."""
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(self.leader, 0)
            except (ProcessLookupError, PermissionError):
                break
            time.sleep(0.05)
        self._signal_group(signal.SIGKILL)
        if leader_wait is not None:
            with contextlib.suppress(Exception):
                leader_wait()

    def _reap(self) -> None:
        """Collect the zombies of members reparented to us (we are their subreaper)."""
        me = os.getpid()
        for pid, row in self.members(by_tag=False).items():
            if pid != self.leader and row[0] == me and row[2] == "Z":
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(pid, os.WNOHANG)


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


# -- every active run: signals and interpreter exit -----------------------------------------
_active_lock = threading.Lock()
_active: dict[int, tuple[ProcessTree, float]] = {}
_installed: dict[int, Any] = {}


def register(tree: ProcessTree, grace: float) -> None:
    with _active_lock:
        _active[id(tree)] = (tree, grace)


def unregister(tree: ProcessTree) -> None:
    with _active_lock:
        _active.pop(id(tree), None)


def active_trees() -> list[ProcessTree]:
    with _active_lock:
        return [t for t, _ in _active.values()]


def stop_all(grace: float | None = None) -> None:
    """Stop every active run's processes (in parallel: each has its own grace period)."""
    with _active_lock:
        runs = list(_active.values())
    if not runs:
        return
    threads = [
        threading.Thread(target=tree.stop, args=(grace if grace is not None else g,), daemon=True)
        for tree, g in runs
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)


def _on_signal(signum: int, frame: Any) -> None:
    stop_all()
    previous = _installed.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
        return
    if previous == signal.SIG_IGN:
        return
    # Die of the signal as we would have without llmcore (exit status 128+N).
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def install_signal_handlers(signals: Iterable[int] = ()) -> bool:
    """Make SIGTERM and SIGHUP (or ``signals``) stop every active agent run first.

    Only from the main thread (Python's rule); the previous handler runs afterwards (the
    default one: the process dies of the signal). Returns whether handlers are installed.
    Called by the runner when it runs in the main thread, and by the CLI.
    """
    if threading.current_thread() is not threading.main_thread():
        return bool(_installed)
    wanted = list(signals) or [
        signal.SIGTERM,
        *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else []),
    ]
    for sig in wanted:
        if sig in _installed:
            continue
        try:
            current = signal.getsignal(sig)
            if current is _on_signal:
                continue
            signal.signal(sig, _on_signal)
        except (ValueError, OSError):
            continue
        _installed[sig] = current
    return True


atexit.register(stop_all)
