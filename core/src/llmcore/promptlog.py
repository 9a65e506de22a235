"""Prompt/response logs: what was asked and answered, in a local SQLite file (``llmcore logs``).

Off unless ``logs.enabled: true`` (or ``--log`` / ``log=True`` for one call); ``log=False``
leaves one call out. Why it is built this way:

* :meth:`PromptLog.record` only puts a dict on a queue; a writer thread redacts it and
  writes it, so a request never waits for the disk (like the ``sqlite`` metrics sink).
* Its own tables and ``schema_migrations`` in its own file (``logs.db`` beside
  ``metrics.db``), WAL so ``llmcore logs`` reads while other processes write; the file is
  created 0600 because it holds prompts.
* Every text field passes through :func:`llmcore.secrets.redact` (registered keys and
  key-shaped tokens) before it is stored; image bytes are never stored, only their type
  and size.
* FTS5 full-text search when the SQLite build has it, ``LIKE`` otherwise.
* Retention: ``max_age_days`` and ``max_size_mb`` prune the oldest entries after writes.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import threading
import time
import uuid
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .secrets import redact

if TYPE_CHECKING:
    import sqlite3

    from .config import Config, LogsConfig
    from .types import Message

MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            """CREATE TABLE conversations (
            id TEXT PRIMARY KEY, name TEXT, model TEXT, created REAL NOT NULL)""",
            """CREATE TABLE responses (
            id TEXT PRIMARY KEY,
            time REAL NOT NULL,
            conversation_id TEXT REFERENCES conversations(id),
            provider TEXT, model TEXT,
            prompt TEXT, system TEXT, messages TEXT, response TEXT, tool_calls TEXT,
            input_tokens INTEGER, output_tokens INTEGER, cost_usd REAL, latency_s REAL,
            attempts TEXT, options TEXT, schema TEXT, attachments TEXT, error TEXT)""",
            "CREATE INDEX ix_responses_time ON responses(time)",
            "CREATE INDEX ix_responses_conversation ON responses(conversation_id, time)",
        ],
    ),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]
COLUMNS = (
    "id",
    "time",
    "conversation_id",
    "provider",
    "model",
    "prompt",
    "system",
    "messages",
    "response",
    "tool_calls",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_s",
    "attempts",
    "options",
    "schema",
    "attachments",
    "error",
)
_TEXT = ("prompt", "system", "messages", "response", "tool_calls", "attempts", "options", "error")
_FTS = [
    "CREATE VIRTUAL TABLE responses_fts USING fts5("
    "prompt, response, system, content='responses', content_rowid='rowid')",
    "CREATE TRIGGER responses_ai AFTER INSERT ON responses BEGIN "
    "INSERT INTO responses_fts(rowid, prompt, response, system) "
    "VALUES (new.rowid, new.prompt, new.response, new.system); END",
    "CREATE TRIGGER responses_ad AFTER DELETE ON responses BEGIN "
    "INSERT INTO responses_fts(responses_fts, rowid, prompt, response, system) "
    "VALUES ('delete', old.rowid, old.prompt, old.response, old.system); END",
]


def default_path() -> Path:
    from .sinks import data_dir

    return data_dir() / "logs.db"


def log_path(config: Config) -> Path:
    """Where the logs of ``config`` are kept."""
    p = config.logs.path
    return Path(p).expanduser() if p else default_path()


def new_id() -> str:
    """A sortable id: milliseconds since the epoch, then randomness."""
    return f"{int(time.time() * 1000):012x}{uuid.uuid4().hex[:12]}"


def connect(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Open (creating 0600 if needed) the log database, in WAL mode, migrated."""
    import sqlite3

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if not p.exists():
        # Created here with 0600 (sqlite3 would use the umask); it holds prompts.
        os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o600))
    conn = sqlite3.connect(str(p), timeout=10.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=10000")
    deadline = time.monotonic() + 10.0
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            _migrate(conn)
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                conn.close()
                raise
            time.sleep(0.02)
    for side in ("-wal", "-shm"):  # SQLite copies the mode, but say it: they hold prompts too
        try:
            os.chmod(f"{p}{side}", 0o600)
        except OSError:
            pass
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    import sqlite3

    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    if int(row[0] or 0) >= SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        current = int(row[0] or 0)
        for version, statements in MIGRATIONS:
            if version > current:
                for sql in statements:
                    conn.execute(sql)
                if version == 1:
                    try:  # full-text search where this SQLite has FTS5
                        for sql in _FTS:
                            conn.execute(sql)
                    except sqlite3.OperationalError:
                        pass
                conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, time.time()))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def has_fts(conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'responses_fts'").fetchone()
    return row is not None


# -- turning a call into a row -------------------------------------------------------------
def message_dict(m: Message) -> dict[str, Any]:
    """A message as stored: image bytes replaced by what they were."""
    d = m.to_dict()
    if m.images:
        d["images"] = [describe_image(i) for i in m.images]
    return d


def describe_image(img: str) -> str:
    if img.startswith("data:"):
        head, _, data = img.partition(",")
        return f"<{head[5:].split(';')[0]}, {len(data) * 3 // 4} bytes>"
    if img.startswith(("http://", "https://")):
        return img
    return f"<image, {len(img) * 3 // 4} bytes>"


def entry_of(
    request: Any,
    response: Any = None,
    *,
    error: BaseException | None = None,
    conversation_id: str | None = None,
    latency_s: float | None = None,
    schema: Any = None,
    attachments: list[str] | None = None,
    attempts: list[Any] | None = None,
) -> dict[str, Any]:
    """The row for one call (not yet redacted: the writer does that, off the request path)."""
    msgs = list(request.messages)
    system = next((m.content for m in msgs if m.role == "system"), None)
    prompt = next((m.content for m in reversed(msgs) if m.role == "user"), "")
    opts = {
        k: getattr(request, k)
        for k in ("temperature", "max_tokens", "top_p", "stop", "seed")
        if getattr(request, k) is not None
    }
    if request.extra:
        # on_event / cancel are an agent run's callback and token: not options, not JSON
        skip = ("prompt", "on_event", "cancel")
        opts.update({k: v for k, v in request.extra.items() if k not in skip})
    resp_attempts = (
        getattr(response, "attempts", None) or attempts or getattr(error, "attempts", None) or []
    )
    usage = getattr(response, "usage", None)
    return {
        "id": new_id(),
        "time": time.time(),
        "conversation_id": conversation_id,
        "provider": getattr(response, "provider", None),
        "model": getattr(response, "model", None) or request.model,
        "prompt": prompt,
        "system": system,
        "messages": json.dumps([message_dict(m) for m in msgs]),
        "response": getattr(response, "content", None),
        "tool_calls": json.dumps(response.tool_calls)
        if getattr(response, "tool_calls", None)
        else None,
        "input_tokens": usage.input_tokens if usage else None,
        "output_tokens": usage.output_tokens if usage else None,
        "cost_usd": getattr(response, "cost_usd", None),
        "latency_s": latency_s if latency_s is not None else getattr(response, "latency_s", None),
        "attempts": json.dumps([a.to_dict() for a in resp_attempts]) if resp_attempts else None,
        "options": json.dumps(opts, default=str) if opts else None,
        "schema": json.dumps(schema) if schema is not None else None,
        "attachments": json.dumps(attachments) if attachments else None,
        "error": f"{type(error).__name__}: {error}" if error is not None else None,
    }


def redact_entry(e: dict[str, Any]) -> dict[str, Any]:
    for k in _TEXT:
        if e.get(k):
            e[k] = redact(e[k])
    return e


_STOP = object()


class PromptLog:
    """Queues entries and writes them on a background thread; prunes per the retention."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_age_days: float | None = None,
        max_size_mb: float | None = None,
    ) -> None:
        self.path = Path(path)
        self.max_age_days = max_age_days
        self.max_size_mb = max_size_mb
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.written = 0
        self.error: BaseException | None = None
        atexit.register(_close_at_exit, weakref.ref(self))

    @classmethod
    def from_config(cls, cfg: LogsConfig, path: Path) -> PromptLog:
        return cls(path, max_age_days=cfg.max_age_days, max_size_mb=cfg.max_size_mb)

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="llmcore-promptlog", daemon=True
                )
                self._thread.start()
        self._queue.put(entry)

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        while True:
            item = self._queue.get()
            batch = [item]
            while True:  # whatever else is waiting goes in the same transaction
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            rows = [redact_entry(e) for e in batch if isinstance(e, dict)]
            if rows:
                try:
                    if conn is None:
                        conn = connect(self.path)
                    write(conn, rows)
                    self.written += len(rows)
                    prune(conn, self.max_age_days, self.max_size_mb)
                except Exception as exc:  # a log never breaks requests: say it once
                    if self.error is None:
                        import sys

                        print(
                            f"llmcore: prompt log {self.path} not written: {redact(str(exc))}",
                            file=sys.stderr,
                        )
                    self.error = exc
            for e in batch:
                if isinstance(e, threading.Event):
                    e.set()
            if any(e is _STOP for e in batch):
                if conn is not None:
                    conn.close()
                return

    def flush(self, timeout: float = 10.0) -> None:
        t = self._thread
        if t is None or not t.is_alive():
            return
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def close(self) -> None:
        t = self._thread
        if t is None or not t.is_alive():
            return
        self._queue.put(_STOP)
        t.join(10.0)
        self._thread = None


def _close_at_exit(ref: weakref.ref[PromptLog]) -> None:
    log = ref()
    if log is not None:
        try:
            log.close()
        except Exception:
            pass


def write(conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for e in rows:
            cid = e.get("conversation_id")
            if cid:
                conn.execute(
                    "INSERT OR IGNORE INTO conversations VALUES (?, ?, ?, ?)",
                    (cid, (e.get("prompt") or "")[:60], e.get("model"), e["time"]),
                )
            conn.execute(
                f"INSERT INTO responses ({', '.join(COLUMNS)}) VALUES "
                f"({', '.join('?' * len(COLUMNS))})",
                [e.get(c) for c in COLUMNS],
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def prune(conn: sqlite3.Connection, max_age_days: float | None, max_size_mb: float | None) -> int:
    """Delete entries older than ``max_age_days`` and the oldest beyond ``max_size_mb`` of
    stored text; return how many went."""
    gone = 0
    if max_age_days is not None:
        cur = conn.execute(
            "DELETE FROM responses WHERE time < ?", (time.time() - max_age_days * 86400,)
        )
        gone += cur.rowcount
    if max_size_mb is not None:
        limit = max_size_mb * 1024 * 1024
        size = (
            "coalesce(length(prompt),0) + coalesce(length(response),0) + "
            "coalesce(length(messages),0) + coalesce(length(attempts),0)"
        )
        total = 0
        cutoff = None
        for t, n in conn.execute(f"SELECT time, {size} FROM responses ORDER BY time DESC"):
            total += n
            if total > limit:
                cutoff = t
                break
        if cutoff is not None:
            gone += conn.execute("DELETE FROM responses WHERE time <= ?", (cutoff,)).rowcount
    if gone:
        conn.execute(
            "DELETE FROM conversations WHERE id NOT IN "
            "(SELECT DISTINCT conversation_id FROM responses "
            "WHERE conversation_id IS NOT NULL)"
        )
    return gone


# -- reading --------------------------------------------------------------------------------
def query(
    path: str | os.PathLike[str],
    *,
    limit: int | None = 3,
    conversation_id: str | None = None,
    search: str | None = None,
    model: str | None = None,
    since: float | None = None,
) -> list[dict[str, Any]]:
    """Entries, oldest first of the newest ``limit`` (``None`` or 0: all) that match."""
    if not Path(path).is_file():
        return []
    conn = connect(path)
    try:
        where: list[str] = []
        args: list[Any] = []
        join = ""
        if search:
            if has_fts(conn):
                join = " JOIN responses_fts f ON f.rowid = r.rowid"
                where.append("responses_fts MATCH ?")
                args.append(" ".join('"' + w.replace('"', '""') + '"' for w in search.split()))
            else:
                where.append("(r.prompt LIKE ? OR r.response LIKE ? OR r.system LIKE ?)")
                args += [f"%{search}%"] * 3
        if conversation_id:
            where.append("r.conversation_id = ?")
            args.append(conversation_id)
        if model:
            where.append("r.model = ?")
            args.append(model)
        if since is not None:
            where.append("r.time >= ?")
            args.append(since)
        sql = f"SELECT r.* FROM responses r{join}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY r.time DESC, r.id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        cur = conn.execute(sql, args)
        names = [c[0] for c in cur.description]
        rows = [dict(zip(names, row, strict=True)) for row in cur]
    finally:
        conn.close()
    for r in rows:
        for k in ("messages", "tool_calls", "attempts", "options", "schema", "attachments"):
            if r.get(k):
                r[k] = json.loads(r[k])
    rows.reverse()
    return rows


def last_conversation(path: str | os.PathLike[str]) -> str | None:
    """The id of the conversation most recently added to."""
    if not Path(path).is_file():
        return None
    conn = connect(path)
    try:
        row = conn.execute(
            "SELECT conversation_id FROM responses WHERE conversation_id IS "
            "NOT NULL ORDER BY time DESC, id DESC LIMIT 1"
        ).fetchone()
    finally:
        conn.close()
    return row[0] if row else None


def conversation_history(path: str | os.PathLike[str], cid: str) -> list[Message]:
    """The turns of conversation ``cid`` as messages (the system message of its first call
    first), to continue it; ``[]`` when there is none."""
    from .types import Message

    rows = query(path, limit=None, conversation_id=cid)
    out: list[Message] = []
    for i, r in enumerate(rows):
        if r.get("error") or r.get("response") is None:
            continue
        if i == 0 and r.get("system"):
            out.append(Message("system", r["system"]))
        out.append(Message("user", r.get("prompt") or ""))
        out.append(Message("assistant", r["response"]))
    return out
