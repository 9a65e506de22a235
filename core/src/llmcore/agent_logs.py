"""Agent run logs: where they go, created private, pruned by age and total size.

Each run writes its whole output (which holds the prompt, the model's answers and whatever
the program printed) to ``<user cache dir>/llmcore/agent-logs/<agent>-<run id>.log``, created
0600. Before a new log is opened, logs older than ``logs_keep_days`` go, then the oldest
ones until all of them fit in ``logs_max_mb`` (both per-agent config keys; the tightest limit
of the agent that runs applies to the whole directory).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger("llmcore.runner")


def log_dir() -> Path:
    """The directory of agent logs, made 0700 when llmcore creates it."""
    import platformdirs

    base = Path(platformdirs.user_cache_dir("llmcore")) / "agent-logs"
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    return base


def prune_logs(
    base: Path, *, max_age_days: float | None, max_total_mb: float | None, now: float | None = None
) -> list[Path]:
    """Remove ``*.log`` files older than ``max_age_days`` and then the oldest ones beyond
    ``max_total_mb`` in all. ``None`` or a value <= 0 turns that limit off. Returns what was
    removed; never raises (a log that cannot be removed is left for next time)."""
    now = time.time() if now is None else now
    entries: list[tuple[float, int, Path]] = []
    try:
        with os.scandir(base) as it:
            for e in it:
                if e.name.endswith(".log") and e.is_file(follow_symlinks=False):
                    st = e.stat(follow_symlinks=False)
                    entries.append((st.st_mtime, st.st_size, Path(e.path)))
    except OSError:
        return []
    entries.sort()  # oldest first
    removed: list[Path] = []
    keep: list[tuple[float, int, Path]] = []
    cutoff = now - max_age_days * 86400 if max_age_days and max_age_days > 0 else None
    for mtime, size, path in entries:
        if cutoff is not None and mtime < cutoff and _remove(path):
            removed.append(path)
        else:
            keep.append((mtime, size, path))
    if max_total_mb and max_total_mb > 0:
        budget = int(max_total_mb * 1024 * 1024)
        total = sum(size for _, size, _ in keep)
        for _mtime, size, path in keep:
            if total <= budget:
                break
            if _remove(path):
                removed.append(path)
                total -= size
    if removed:
        log.debug("pruned %d agent log(s) in %s", len(removed), base)
    return removed


def _remove(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except OSError:
        return False
