"""The ``jsonl`` sink: one JSON object per event per line, rotated by size.

Options (``metrics.jsonl``): ``path`` (default ``<user data dir>/metrics.jsonl``),
``max_bytes`` (default 10 MB; 0 = never rotate), ``backups`` (rotated files kept:
``metrics.jsonl.1`` is the newest; default 3).

Each line is written with one ``write`` on a file opened for append, so lines from several
processes never interleave within a line. Rotation is per process: two processes rotating
at the same moment may each keep a short file; no event is lost.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import IO, Any, ClassVar

import attrs

from ..errors import ConfigError
from ..metrics import MetricsEvent, MetricsSink
from . import data_dir


@attrs.define
class JsonlOptions:
    path: str | None = None
    max_bytes: int = 10_000_000
    backups: int = 3


class JsonlSink(MetricsSink):
    type_name: ClassVar[str] = "jsonl"
    Options: ClassVar[type | None] = JsonlOptions

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        if self.opts.max_bytes < 0 or self.opts.backups < 0:
            raise ConfigError("metrics.jsonl: max_bytes and backups must not be negative")
        self.path = (
            Path(self.opts.path).expanduser() if self.opts.path else (data_dir() / "metrics.jsonl")
        )
        self._lock = threading.Lock()
        self._fh: IO[str] | None = None

    def _open(self) -> IO[str]:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(  # noqa: SIM115  (kept open across emits; closed in close())
                self.path,
                "a",
                encoding="utf-8",
                opener=lambda p, f: os.open(p, f, 0o600),
            )  # private: prompts' data
        return self._fh

    def emit(self, event: MetricsEvent) -> None:
        line = json.dumps(event.to_dict(), separators=(",", ":")) + "\n"
        with self._lock:
            fh = self._open()
            limit = self.opts.max_bytes
            # the file's real size, which other processes' appends also grow
            size = os.fstat(fh.fileno()).st_size
            if limit and size > 0 and size + len(line.encode()) > limit:
                self._rotate()
                fh = self._open()
            fh.write(line)
            fh.flush()

    def _rotate(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        n = self.opts.backups
        if n == 0:
            self.path.unlink(missing_ok=True)
            return
        for i in range(n - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                os.replace(src, self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self.path.exists():
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
