"""The metrics sinks the core ships: ``sqlite`` (default), ``jsonl``, ``prometheus``, ``log``.

Each module imports its heavy library (sqlite3, prometheus_client) only when a sink is built.
"""

from __future__ import annotations

from pathlib import Path


def data_dir() -> Path:
    """Where sinks keep their files by default: the user data dir of ``llmcore``."""
    import platformdirs

    return Path(platformdirs.user_data_dir("llmcore"))
