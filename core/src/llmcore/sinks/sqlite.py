"""The ``sqlite`` sink (the default): every event in a local SQLite database.

Options (``metrics.sqlite``): ``path`` (default ``<user data dir>/metrics.db``),
``batch_size`` (events per transaction at most, default 5000), ``flush_interval`` (seconds
the writer gathers events before one transaction, default 1; a flush or close writes at
once), ``queue_size`` (events held
in memory while the writer is behind, default 20000; beyond that events are dropped and
that is reported once), ``compute_cost`` (default true: price events that carry tokens
but no cost from the model registry, at write time).

Why it is built this way:

* ``emit`` only appends a tuple of the event's values to a deque (one C call); a
  background thread wakes every
  ``flush_interval`` and writes what gathered in one transaction, so a request never waits
  for the disk and the writer rarely competes with it for the CPU.
* Large transactions: a commit rewrites every page it touched in the table and its three
  indexes (and the WAL checkpoints copy them again), so the writer's CPU per event falls
  with the batch: measured on a growing database, 17 µs/event in batches of 500, 9 µs
  in 2000, 7 µs in 5000. At 4000 requests/s (8000 events) a batch of 500 filled every
  60 ms; the default of 5000 lets the writer take most of a second's events at once.
* WAL journal + ``busy_timeout``: several processes (two CLIs, a server) write the same
  file safely; readers (``llmcore usage``) never block writers.
* A ``schema_migrations`` table records the schema version; migrations run once, under
  ``BEGIN IMMEDIATE`` so two processes starting together do not both apply them.
* ``close()`` (and ``atexit``) drains the queue, so a short CLI run loses nothing.
* A database locked by another process (or corrupt, or on a full disk) delays nothing:
  the writer waits at most ``_WRITE_WAIT`` seconds for the lock, ``close()`` at most
  ``_CLOSE_WAIT``; events that could not be written are counted, reported once on
  stderr, and added to ``<db>.lost`` so that ``llmcore doctor`` shows them.
"""

from __future__ import annotations

import atexit
import collections
import json
import operator
import os
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from ..errors import ConfigError, LLMCoreError
from ..metrics import FIELDS, MetricsEvent, MetricsSink
from ..pricing import Unpriced, price_event
from ..secrets import redact
from . import data_dir

if TYPE_CHECKING:
    import sqlite3

#: Columns of ``events`` as of schema version 1; fields added to MetricsEvent later land
#: in ``extra`` (JSON) until a migration gives them a column.
COLUMNS: tuple[str, ...] = (
    "time",
    "kind",
    "provider",
    "plugin",
    "model",
    "operation",
    "outcome",
    "status",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost_usd",
    "latency_s",
    "ttft_s",
    "tokens_per_s",
    "attempt",
    "attempts",
    "request_id",
    "message",
    "cooldown_until",
    "agent",
    "duration_s",
    "files_changed",
    "session_id",
)

MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            """CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            time REAL NOT NULL,
            kind TEXT NOT NULL,
            provider TEXT, plugin TEXT, model TEXT, operation TEXT,
            outcome TEXT NOT NULL DEFAULT 'ok',
            status INTEGER,
            input_tokens INTEGER, output_tokens INTEGER,
            cached_tokens INTEGER, reasoning_tokens INTEGER,
            cost_usd REAL, latency_s REAL, ttft_s REAL, tokens_per_s REAL,
            attempt INTEGER, attempts INTEGER, request_id TEXT, message TEXT,
            cooldown_until REAL, agent TEXT, duration_s REAL, files_changed INTEGER,
            session_id TEXT,
            pid INTEGER,
            extra TEXT
        )""",
            "CREATE INDEX ix_events_time ON events(time)",
            "CREATE INDEX ix_events_kind_time ON events(kind, time)",
            "CREATE INDEX ix_events_provider_time ON events(provider, time)",
            "CREATE INDEX ix_events_model_time ON events(model, time)",
            "CREATE INDEX ix_events_agent_time ON events(agent, time)",
        ],
    ),
    # No query in core or the plugins filters on model or agent (budgets, usage, the
    # gateway's key spend and promptlog use time, kind and provider), and each index
    # costs every insert a B-tree update: dropping these two takes an insert from about
    # 7.2 to 2.7 µs/event on the writer thread.
    (
        2,
        [
            "DROP INDEX IF EXISTS ix_events_model_time",
            "DROP INDEX IF EXISTS ix_events_agent_time",
        ],
    ),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]
_INSERT = (
    f"INSERT INTO events ({', '.join((*COLUMNS, 'pid', 'extra'))}) "
    f"VALUES ({', '.join('?' * (len(COLUMNS) + 2))})"
)
#: MetricsEvent fields without a column yet: they go to ``extra``.
_EXTRA_FIELDS: tuple[str, ...] = tuple(f for f in FIELDS if f not in COLUMNS)
#: Reads what the sink stores of an event (its columns, then any extra fields) into a
#: tuple in one C call; ``emit`` queues that tuple, not the event (see ``SqliteSink.emit``).
values_of = operator.attrgetter(*COLUMNS, *_EXTRA_FIELDS)
_KIND, _MESSAGE, _COST, _MODEL, _PLUGIN = (
    COLUMNS.index(c) for c in ("kind", "message", "cost_usd", "model", "plugin")
)
_PRICED_KINDS = ("request", "agent_run")
#: Rows per INSERT statement at most. A multi-row ``INSERT ... VALUES (..), (..)`` is one
#: ``sqlite3_step`` for many rows: ``executemany`` steps once per row and releases and
#: retakes the GIL around each step, and every retake can make the request thread wait.
_ROWS_PER_STATEMENT = 100
#: How long the writer waits for another process's lock before it gives a batch up.
_WRITE_WAIT = 0.5
#: How long ``close()`` waits for the writer (at the end of a CLI run) before it gives up.
_CLOSE_WAIT = 1.0


class MetricsDatabaseError(LLMCoreError):
    """The metrics database cannot be read (``llmcore usage``)."""


def lost_path(path: str | os.PathLike[str]) -> Path:
    """Where the count of events the sink could not write is kept (for ``doctor``)."""
    p = Path(path)
    return p.with_name(p.name + ".lost")


def lost_events(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """``{"lost": N, "error": why, "time": t}`` when events were lost, else ``None``."""
    try:
        data = json.loads(lost_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("lost"), int) or data["lost"] <= 0:
        return None
    return data


def _count_lost(path: Path, n: int, why: str) -> None:
    """Add ``n`` to the lost-events count next to the database (best effort)."""
    if n <= 0:
        return
    old = lost_events(path) or {}
    data = {"lost": int(old.get("lost", 0)) + n, "error": redact(why)[:300], "time": time.time()}
    try:
        target = lost_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, target)
    except OSError:
        pass


def default_path() -> Path:
    return data_dir() / "metrics.db"


def connect(path: str | os.PathLike[str], timeout: float = 10.0) -> sqlite3.Connection:
    """Open (creating if needed) the metrics database, in WAL mode, migrated; waits at
    most ``timeout`` seconds for another process's lock."""
    import sqlite3

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.touch(mode=0o600, exist_ok=True)  # it holds prompts' metadata: private, like its -wal
    conn = sqlite3.connect(str(p), timeout=timeout, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    # Switching to WAL and the first migration need the write lock, and SQLite answers
    # "database is locked" at once (without the busy handler) when another process opening
    # the same new file holds it: retry for as long as the busy timeout would have waited.
    deadline = time.monotonic() + timeout
    while True:
        try:
            # WAL lets `llmcore usage` read while other processes write; NORMAL sync is
            # durable against process crashes, which is what metrics need.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            migrate(conn)
            return conn
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                conn.close()
                raise
            time.sleep(0.02)


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations this database lacks; return the schema version."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    if schema_version(conn) >= SCHEMA_VERSION:
        return schema_version(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = schema_version(conn)  # again, under the write lock
        for version, statements in MIGRATIONS:
            if version > current:
                for sql in statements:
                    conn.execute(sql)
                conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, time.time()))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return schema_version(conn)


def event_row(d: dict[str, Any]) -> tuple[Any, ...]:
    """The ``events`` row of one event given as a dict (as ``MetricsEvent.to_dict``)."""
    extra = {k: v for k, v in d.items() if k not in COLUMNS and v is not None}
    return (*(d.get(c) for c in COLUMNS), os.getpid(), json.dumps(extra) if extra else None)


def rows_of(
    values: list[tuple[Any, ...]],
    pid: int,
    registry: Any,
    unpriced: Unpriced | None = None,
) -> list[tuple[Any, ...]]:
    """The ``events`` rows of events given as :data:`values_of` tuples: messages redacted,
    and (with a ``registry``) requests and agent runs that carry tokens but no cost priced.
    Runs on the writer thread; the same rows as :func:`event_row` of ``to_dict()``, at a
    fraction of the cost.

    ``unpriced`` (kept by the caller for as long as it uses this ``registry``) collects
    the models the registry has no price for; their events skip the lookup."""
    rows = []
    n = len(COLUMNS)
    for vals in values:
        r = vals[:n] if _EXTRA_FIELDS else vals
        if r[_MESSAGE] or (
            registry is not None
            and r[_COST] is None
            and r[_KIND] in _PRICED_KINDS
            and (unpriced is None or (r[_MODEL], r[_PLUGIN]) not in unpriced)
        ):
            v = list(r)
            if v[_MESSAGE]:
                v[_MESSAGE] = redact(v[_MESSAGE])
            if (
                registry is not None
                and v[_COST] is None
                and v[_KIND] in _PRICED_KINDS
                and (unpriced is None or (v[_MODEL], v[_PLUGIN]) not in unpriced)
            ):
                v[_COST] = price_event(registry, dict(zip(COLUMNS, v, strict=True)))
                if v[_COST] is None and unpriced is not None:
                    unpriced.note(registry, v[_MODEL], v[_PLUGIN])
            r = tuple(v)
        extra = None
        if _EXTRA_FIELDS:
            more = {f: v for f, v in zip(_EXTRA_FIELDS, vals[n:], strict=True) if v is not None}
            extra = json.dumps(more) if more else None
        rows.append((*r, pid, extra))
    return rows


def insert_rows(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows`` (as :func:`rows_of` makes them) in one transaction, in order.

    Up to ``_ROWS_PER_STATEMENT`` rows go in one statement, which names only the columns
    some of its rows fill: most of an event's 27 columns are NULL, and Python's sqlite3
    binds ``None`` through its slow adapter lookup (~0.7 µs each on 3.11, more than the
    rest of the row), while an omitted column is NULL for free.
    """
    per = max(1, min(_ROWS_PER_STATEMENT, _variable_limit(conn) // len(_ALL_COLUMNS)))
    conn.execute("BEGIN IMMEDIATE")
    try:
        for i in range(0, len(rows), per):
            chunk = rows[i : i + per]
            n = len(chunk)
            used = tuple(
                j
                for j, col in enumerate(zip(*chunk, strict=True))
                if j in _ALWAYS or col.count(None) != n
            )
            pick = operator.itemgetter(*used)
            if len(used) == 1:
                args = [pick(row) for row in chunk]
            else:
                args = [x for row in chunk for x in pick(row)]
            conn.execute(_insert_sql(used, n), args)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


_ALL_COLUMNS = (*COLUMNS, "pid", "extra")
#: Always named, so a None there fails as the NOT NULL schema says (never a DEFAULT).
_ALWAYS = frozenset(_ALL_COLUMNS.index(c) for c in ("time", "kind", "outcome"))
_SQL_CACHE: dict[tuple[tuple[int, ...], int], str] = {}


def _insert_sql(used: tuple[int, ...], n: int) -> str:
    sql = _SQL_CACHE.get((used, n))
    if sql is None:
        if len(_SQL_CACHE) > 256:  # many event shapes: keep the cache small
            _SQL_CACHE.clear()
        one = "(" + ", ".join("?" * len(used)) + ")"
        sql = _SQL_CACHE[(used, n)] = (
            f"INSERT INTO events ({', '.join(_ALL_COLUMNS[j] for j in used)}) VALUES "
            + ", ".join([one] * n)
        )
    return sql


def _variable_limit(conn: sqlite3.Connection) -> int:
    """How many ``?`` one statement may hold (999 on SQLite before 3.32, and when the
    Python is too old to ask)."""
    import sqlite3

    getlimit = getattr(conn, "getlimit", None)  # Python 3.11+
    which = getattr(sqlite3, "SQLITE_LIMIT_VARIABLE_NUMBER", None)
    if getlimit is None or which is None:
        return 999
    return int(getlimit(which))


def read_events(
    path: str | os.PathLike[str],
    since: float | None = None,
    until: float | None = None,
    kinds: tuple[str, ...] | None = None,
) -> list[dict[str, Any]]:
    """Events from the database as dicts, oldest first (``[]`` when there is no file).

    Raises :class:`MetricsDatabaseError` (a clear message, no traceback) when the file is
    not a readable metrics database.
    """
    import sqlite3

    if not Path(path).is_file():
        return []
    try:
        return _read_events(path, since, until, kinds)
    except (sqlite3.DatabaseError, ValueError, RecursionError) as exc:
        raise MetricsDatabaseError(
            f"cannot read the metrics database {path}: {exc}",
            hint=f"if it is damaged, move it aside (mv '{path}' '{path}.bad'); "
            "llmcore starts a new one",
        ) from None


def _read_events(
    path: str | os.PathLike[str],
    since: float | None,
    until: float | None,
    kinds: tuple[str, ...] | None,
) -> list[dict[str, Any]]:
    conn = connect(path)
    try:
        where: list[str] = []
        args: list[Any] = []
        if since is not None:
            where.append("time >= ?")
            args.append(since)
        if until is not None:
            where.append("time < ?")
            args.append(until)
        if kinds:
            where.append(f"kind IN ({', '.join('?' * len(kinds))})")
            args.extend(kinds)
        sql = "SELECT * FROM events" + (" WHERE " + " AND ".join(where) if where else "")
        cur = conn.execute(sql + " ORDER BY time, id", args)
        names = [c[0] for c in cur.description]
        out = []
        for row in cur:
            d = dict(zip(names, row, strict=True))
            if d.get("extra"):
                d.update(json.loads(d.pop("extra")))
            else:
                d.pop("extra", None)
            for f in _EXTRA_FIELDS:  # fields without a column read back like columns do
                d.setdefault(f, None)
            out.append(d)
        return out
    finally:
        conn.close()


@attrs.define
class SqliteOptions:
    path: str | None = None
    # Large enough that a busy process writes few, big transactions (see the module doc);
    # the queue holds a few batches (~8 MB at most) while a locked database is waited for.
    batch_size: int = 5000
    queue_size: int = 20000
    flush_interval: float = 1.0
    compute_cost: bool = True


class _Flush:
    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


class SqliteSink(MetricsSink):
    type_name: ClassVar[str] = "sqlite"
    Options: ClassVar[type | None] = SqliteOptions

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        if self.opts.batch_size < 1 or self.opts.queue_size < 1:
            raise ConfigError("metrics.sqlite: batch_size and queue_size must be at least 1")
        if self.opts.flush_interval < 0:
            raise ConfigError("metrics.sqlite.flush_interval must not be negative")
        self.path = Path(self.opts.path).expanduser() if self.opts.path else default_path()
        # A deque, not queue.Queue: append is one atomic C call and wakes nobody, so the
        # request path pays ~1 µs; the writer polls every flush_interval.
        self._pending: collections.deque[Any] = collections.deque()
        self._urgent = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.written = 0
        self.dropped = 0
        self._inflight = 0  # events of the batch the writer is writing now
        self._why = ""  # the last write error, for the lost-events record
        self._recorded = 0  # dropped events already added to the lost-events record
        #: Is a writer thread running (set by ``_start``, cleared as the writer ends, and
        #: in a forked child, which has no writer)?
        self._writing = False
        self._queue_size: int = self.opts.queue_size
        self._batch_size: int = self.opts.batch_size
        ref = weakref.ref(self)
        atexit.register(_close_at_exit, ref)
        _SINKS.add(self)

    # -- the request path: one append ------------------------------------------------------
    def emit(self, event: MetricsEvent) -> None:
        # A flag, not Thread.is_alive(): that takes a lock, and was a fifth of this method.
        if not self._writing:
            self._start()
        pending = self._pending
        if len(pending) >= self._queue_size:
            self.dropped += 1
            self.report(
                RuntimeError(
                    f"{self.opts.queue_size} events waiting; the writer "
                    "cannot keep up, so events are being dropped"
                ),
                "fell behind",
            )
            return
        # A tuple of the values, not the event: what is stored is the event as emitted
        # (later changes to it by a hook do not leak in), the event is freed at once, and
        # a tuple of plain values is dropped from the cyclic GC's tracking at its next pass.
        pending.append(values_of(event))
        if len(pending) >= self._batch_size:
            self._urgent.set()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._write_until_stopped, name="llmcore-sqlite-sink", daemon=True
                )
                self._thread.start()
            self._writing = True

    def _write_until_stopped(self) -> None:
        try:
            self._run()
        finally:
            self._writing = False  # the next emit starts a writer again

    # -- the writer thread -----------------------------------------------------------------
    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        registry: Any = None
        unpriced = Unpriced()  # lives as long as ``registry``
        pending = self._pending
        pid = os.getpid()  # a syscall on modern glibc: once per writer, not per row
        while True:
            # Wake every flush_interval (or at once for a flush, close or a full batch):
            # one transaction per batch keeps the writer's CPU time, which competes with
            # requests for the GIL, small.
            self._urgent.wait(self.opts.flush_interval)
            self._urgent.clear()
            batch: list[Any] = []
            while pending:
                batch.append(pending.popleft())
            events = [e for e in batch if type(e) is tuple]
            for i in range(0, len(events), self.opts.batch_size):
                chunk = events[i : i + self.opts.batch_size]
                self._inflight = len(chunk)
                try:
                    if conn is None:
                        conn = connect(self.path, timeout=_WRITE_WAIT)
                    if self.opts.compute_cost and registry is None:
                        from ..registry import get_registry

                        registry = get_registry(None)
                    insert_rows(conn, rows_of(chunk, pid, registry, unpriced))
                    self.written += len(chunk)
                except Exception as exc:  # disk full, locked too long, unwritable dir
                    self.dropped += len(chunk)
                    self._why = f"{type(exc).__name__}: {exc}"
                    self.report(
                        RuntimeError(
                            f"{self.path}: {exc}; {self.dropped} event(s) lost so far, "
                            "counted in `llmcore doctor`"
                        )
                    )
                    if conn is not None:
                        try:
                            conn.close()
                        except Exception:
                            pass
                        conn = None
                finally:
                    self._inflight = 0
            stop = False
            for item in batch:
                if isinstance(item, _Flush):
                    item.done.set()
                elif item is _STOP:
                    stop = True
            if stop:
                if conn is not None:
                    conn.close()
                return

    # -- draining ----------------------------------------------------------------------------
    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every event emitted so far is written (or ``timeout`` passes)."""
        t = self._thread
        if t is None or not t.is_alive():
            return
        marker = _Flush()
        self._pending.append(marker)
        self._urgent.set()
        marker.done.wait(timeout)

    def close(self) -> None:
        t = self._thread
        if t is not None and t.is_alive():
            self._pending.append(_STOP)
            self._urgent.set()
            t.join(_CLOSE_WAIT)
            if t.is_alive():  # stuck on a lock: what it holds and what waits is lost
                stuck = self._inflight + sum(1 for e in self._pending if type(e) is tuple)
                self._pending.clear()
                self.dropped += stuck
                self._why = self._why or "the database stayed locked"
                self.report(
                    RuntimeError(
                        f"{self.path} stayed locked; {self.dropped} event(s) not written, "
                        "counted in `llmcore doctor`"
                    )
                )
            self._thread = None
        self._record_lost()

    def _record_lost(self) -> None:
        new = self.dropped - self._recorded
        if new > 0:
            self._recorded = self.dropped
            _count_lost(self.path, new, self._why)


#: Every sink of this process, so a forked child can note that it has no writer threads.
_SINKS: weakref.WeakSet[SqliteSink] = weakref.WeakSet()


def _no_writers_after_fork() -> None:
    for sink in list(_SINKS):
        sink._writing = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_no_writers_after_fork)


def _close_at_exit(ref: weakref.ref[SqliteSink]) -> None:
    sink = ref()
    if sink is not None:
        try:
            sink.close()
        except Exception:
            pass
