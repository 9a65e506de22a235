"""Where cooldowns live, so that every process (and, with Redis, every host) sees them.

The router asks :meth:`CooldownStore.active` on every request, so that call must be cheap:
each store keeps a snapshot in memory and refreshes it at most every ``recheck`` seconds
(the file store only when the file's mtime changed; the Redis store on a background
thread, so a request never waits on the network). Writes happen only when something goes
wrong (a 429, a provider crossing its failure threshold).

State is data another process (or a person, or a bug) wrote, so it is checked on every
read: a value that is not a finite number, a key that is not a short string, or a file
too big or too deeply nested to parse is dropped with one warning. Cooldowns are capped
(``routing.max_cooldown``, default one day). Within a process a cooldown ends on the
monotonic clock, so a wall clock stepped back or forward changes nothing; across processes
only wall time can be shared, so the cap bounds what a skewed clock can do.

A store never raises into a request: an unreadable file, a held lock or a sick Redis is
reported once on stderr and the store carries on with what it has in memory.

``routing.state`` picks the store: ``file`` (default: ``state.json`` in the user state
directory), ``file:PATH``, ``memory`` (this process only) or ``redis://HOST:PORT/DB``.
"""

from __future__ import annotations

import collections
import json
import math
import os
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .errors import ConfigError
from .secrets import redact

STATE_VERSION = 1
#: The longest cooldown, unless ``routing.max_cooldown`` says otherwise (seconds).
MAX_COOLDOWN = 86400.0
#: A state file bigger than this is not parsed (it cannot be ours: entries are ~100 bytes).
MAX_STATE_BYTES = 4 * 1024 * 1024
_MAX_KEY = 512
_MAX_REASON = 200


@attrs.frozen
class Cooldown:
    """``key`` (``provider`` or ``provider/model``) is skipped until ``until`` (epoch seconds).

    ``deadline`` is the same moment on this process's monotonic clock; stores fill it in,
    and it is what decides, within the process, whether the cooldown still runs.
    """

    key: str
    until: float
    reason: str = ""
    deadline: float | None = attrs.field(default=None, eq=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"until": self.until, "reason": self.reason}


def checked(
    key: Any,
    until: Any,
    reason: Any,
    cap: float,
    *,
    wall: float | None = None,
    mono: float | None = None,
) -> Cooldown | None:
    """A valid :class:`Cooldown` from untrusted values, or ``None`` when they are not one.

    ``until`` must be a finite number; a cooldown longer than ``cap`` seconds from now is
    shortened to ``cap``; the key must be a non-empty string of at most 512 characters.
    """
    if not isinstance(key, str) or not key or len(key) > _MAX_KEY:
        return None
    if isinstance(until, bool) or not isinstance(until, (int, float)) or not math.isfinite(until):
        return None
    wall = time.time() if wall is None else wall
    mono = time.monotonic() if mono is None else mono
    left = min(float(until) - wall, cap)
    text = reason if isinstance(reason, str) else ""
    return Cooldown(key, wall + left, text[:_MAX_REASON], mono + left)


class CooldownStore:
    """The interface: read the active cooldowns, add one, remove one."""

    #: How often (seconds) the in-memory snapshot is refreshed from the shared backend.
    recheck: float = 0.25
    #: The longest cooldown this store keeps (seconds); longer ones are shortened to it.
    max_cooldown: float = MAX_COOLDOWN

    def active(self, now: float | None = None) -> Mapping[str, Cooldown]:
        """The cooldowns still running at ``now`` (epoch seconds; default: now, judged on
        the monotonic clock)."""
        raise NotImplementedError

    def put(self, cooldown: Cooldown) -> None:
        """Add a cooldown; an existing one for the same key that ends later is kept."""
        raise NotImplementedError

    def clear(self, key: str | None = None) -> None:
        """Remove the cooldown of ``key``, or every cooldown when ``key`` is None."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections."""

    # -- shared helpers ---------------------------------------------------------------
    _warned: bool = False
    _dropped_reported: bool = False

    def _warn(self, text: str) -> None:
        """Report a store problem once per store: requests go on regardless."""
        if not self._warned:
            self._warned = True
            print(f"llmcore: {redact(text)}", file=sys.stderr)

    def _dropped(self, where: str, n: int) -> None:
        if n and not self._dropped_reported:
            self._dropped_reported = True
            print(
                f"llmcore: {redact(where)}: ignored {n} invalid cooldown value(s) "
                "(not a finite time, or a bad key)",
                file=sys.stderr,
            )

    def _local(self, cooldown: Cooldown) -> Cooldown | None:
        """``cooldown`` checked, capped and given its monotonic deadline."""
        if cooldown.deadline is not None and cooldown.until - time.time() <= self.max_cooldown:
            return cooldown
        return checked(cooldown.key, cooldown.until, cooldown.reason, self.max_cooldown)

    def _parse_entries(
        self, raw: Any, where: str, known: Mapping[str, Cooldown]
    ) -> dict[str, Cooldown]:
        """Checked cooldowns from ``{key: {"until": …, "reason": …}}``; the invalid ones are
        dropped and reported once. An entry this process already holds keeps its monotonic
        deadline (so a clock step cannot stretch it)."""
        if not isinstance(raw, dict):
            raise ValueError("'cooldowns' is not a mapping")
        wall, mono = time.time(), time.monotonic()
        out: dict[str, Cooldown] = {}
        bad = 0
        for k, v in raw.items():
            c = checked(
                k,
                v.get("until") if isinstance(v, dict) else None,
                v.get("reason", "") if isinstance(v, dict) else "",
                self.max_cooldown,
                wall=wall,
                mono=mono,
            )
            if c is None:
                bad += 1
                continue
            old = known.get(c.key)
            if old is not None and old.until == v.get("until") and old.deadline is not None:
                c = old
            out[c.key] = c
        self._dropped(where, bad)
        return out


def _live(entries: Mapping[str, Cooldown], now: float | None = None) -> dict[str, Cooldown]:
    """The entries still running: at wall time ``now`` when given, else on the monotonic
    clock (immune to wall clock steps)."""
    if now is not None:
        return {k: c for k, c in entries.items() if c.until > now}
    mono = time.monotonic()
    return {
        k: c
        for k, c in entries.items()
        if (c.deadline if c.deadline is not None else c.until - time.time() + mono) > mono
    }


def _merge(entries: dict[str, Cooldown], cooldown: Cooldown) -> None:
    old = entries.get(cooldown.key)
    if old is None or old.until < cooldown.until:
        entries[cooldown.key] = cooldown


class MemoryStore(CooldownStore):
    """Cooldowns in this process only (``routing.state: memory``)."""

    def __init__(self, *, max_cooldown: float = MAX_COOLDOWN) -> None:
        self.max_cooldown = max_cooldown
        self._lock = threading.Lock()
        self._entries: dict[str, Cooldown] = {}

    def active(self, now: float | None = None) -> Mapping[str, Cooldown]:
        if not self._entries:
            return {}
        return _live(self._entries, now)

    def put(self, cooldown: Cooldown) -> None:
        c = self._local(cooldown)
        if c is None:
            self._dropped("memory", 1)
            return
        with self._lock:
            entries = _live(self._entries)
            _merge(entries, c)
            self._entries = entries

    def clear(self, key: str | None = None) -> None:
        with self._lock:
            self._entries = (
                {} if key is None else {k: c for k, c in self._entries.items() if k != key}
            )


class _SnapshotStore(CooldownStore):
    """A store shared with other processes: a local snapshot, refreshed at most every
    ``recheck`` seconds, so the request path does no I/O in between."""

    recheck: float
    _checked: float
    _entries: dict[str, Cooldown]

    def active(self, now: float | None = None) -> Mapping[str, Cooldown]:
        mono = time.monotonic()
        if mono - self._checked >= self.recheck:
            self._checked = mono
            self._refresh()
        if not self._entries:
            return {}
        return _live(self._entries, now)

    def _refresh(self) -> None:
        """Replace ``_entries`` with what the shared place holds now."""
        raise NotImplementedError


def default_state_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_state_dir("llmcore")) / "state.json"


class FileStore(_SnapshotStore):
    """A JSON file shared by every process on the machine.

    Writes take a file lock, merge with what is on disk, and replace the file atomically
    (temporary file + ``os.replace``), so readers never see half a file and two writers
    never lose each other's cooldowns. Reads need no lock. Temporary files left by a
    writer that was killed are removed by the next writer (under the lock, any temporary
    file is an orphan).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        recheck: float = 0.25,
        lock_timeout: float = 5.0,
        max_cooldown: float = MAX_COOLDOWN,
    ) -> None:
        self.path = Path(path).expanduser() if path else default_state_path()
        self.recheck = recheck
        self.lock_timeout = lock_timeout
        self.max_cooldown = max_cooldown
        self._entries: dict[str, Cooldown] = {}
        self._mtime: int | None = None  # st_mtime_ns of the file the snapshot came from
        self._checked = float("-inf")  # monotonic time of the last stat
        self._mutex = threading.Lock()
        self._corrupt_reported = False
        # Changes that could not reach the file (lock held too long, disk error): applied
        # again, in order, by the next write that gets through, so none is lost.
        self._unsaved: list[Any] = []

    def __repr__(self) -> str:
        return f"<FileStore {str(self.path)!r}>"

    # -- reading ----------------------------------------------------------------------

    def _refresh(self) -> None:
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            self._entries, self._mtime = {}, None
            return
        except OSError as exc:
            self._warn(f"cannot read cooldown state {self.path}: {exc}")
            return
        if mtime != self._mtime:
            entries, ok = self._read()
            if not ok:
                self._recover()
                return
            self._entries, self._mtime = entries, mtime

    def _read(self) -> tuple[dict[str, Cooldown], bool]:
        """The file's cooldowns, and False when the file exists but cannot be understood."""
        try:
            with open(self.path, "rb") as fh:
                blob = fh.read(MAX_STATE_BYTES + 1)
            if len(blob) > MAX_STATE_BYTES:
                self._report_corrupt(f"bigger than {MAX_STATE_BYTES} bytes")
                return {}, False
            text = blob.decode("utf-8")
        except FileNotFoundError:
            return {}, True
        except (OSError, UnicodeDecodeError) as exc:
            self._report_corrupt(str(exc))
            return {}, False
        try:
            data = json.loads(text)  # RecursionError for absurd nesting: caught below
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            entries = self._parse_entries(data["cooldowns"], str(self.path), self._entries)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            self._report_corrupt(f"{type(exc).__name__}: {exc}")
            return {}, False
        return entries, True

    def _report_corrupt(self, why: str) -> None:
        if not self._corrupt_reported:
            self._corrupt_reported = True
            print(
                f"llmcore: cooldown state {self.path} was unreadable ({redact(why)[:200]}); "
                "it is replaced by a fresh one",
                file=sys.stderr,
            )

    def _recover(self) -> None:
        """Replace a corrupt file (under the lock, in case another process fixed it first)."""
        self._update(lambda entries: None)

    # -- writing ----------------------------------------------------------------------
    def put(self, cooldown: Cooldown) -> None:
        c = self._local(cooldown)
        if c is None:
            self._dropped(str(self.path), 1)
            return
        self._update(lambda entries: _merge(entries, c))

    def clear(self, key: str | None = None) -> None:
        def drop(entries: dict[str, Cooldown]) -> None:
            if key is None:
                entries.clear()
            else:
                entries.pop(key, None)

        self._update(drop)

    def _update(self, change: Any) -> None:
        from filelock import FileLock, Timeout

        with self._mutex:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with FileLock(str(self.path) + ".lock", timeout=self.lock_timeout):
                    self._remove_orphans()
                    entries, _ = self._read()
                    entries = _live(entries)
                    for earlier in self._unsaved:
                        earlier(entries)
                    change(entries)
                    self._write(entries)
                    self._unsaved.clear()
                    self._mtime = os.stat(self.path).st_mtime_ns
                    self._entries = entries
                    self._checked = time.monotonic()
            except Timeout:
                self._warn(
                    f"cooldown state {self.path} is locked by another process; "
                    "this process keeps its cooldowns in memory for now"
                )
                self._unsaved = [*self._unsaved[-999:], change]
                entries = dict(self._entries)
                change(entries)
                self._entries = entries
            except OSError as exc:
                self._warn(
                    f"cannot write cooldown state {self.path}: {exc}; cooldowns are kept in memory"
                )
                self._unsaved = [*self._unsaved[-999:], change]
                entries = dict(self._entries)
                change(entries)
                self._entries = entries

    def close(self) -> None:
        """Write changes that could not be written before (one more try)."""
        if self._unsaved:
            self._update(lambda entries: None)

    def _remove_orphans(self) -> None:
        """Delete temporary files of writers killed mid-write (call under the lock)."""
        for tmp in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            try:
                tmp.unlink()
            except OSError:
                pass

    def _write(self, entries: Mapping[str, Cooldown]) -> None:
        data = {
            "version": STATE_VERSION,
            "cooldowns": {k: c.to_dict() for k, c in sorted(entries.items())},
        }
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=1, allow_nan=False)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        finally:
            if tmp.exists():
                tmp.unlink()


class RedisStore(_SnapshotStore):
    """Cooldowns in Redis, shared by every host that points at it.

    Each cooldown is one key ``PREFIX<key>`` holding its JSON, with a TTL equal to the
    cooldown, so Redis forgets it when it ends. Needs the ``redis`` package
    (``pip install 'llmcore-framework[redis]'``).

    Redis is a dependency, not a single point of failure: every Redis call runs on one
    background thread with a short socket timeout. :meth:`active` returns the snapshot at
    once and, when it is older than ``recheck``, asks the thread for a fresh one;
    :meth:`put` and :meth:`clear` change the snapshot at once and queue the write. When
    Redis fails, the router keeps routing on the snapshot, the queued writes are kept,
    and the thread tries again every ``retry_interval`` seconds; a frozen Redis costs the
    request path nothing.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "llmcore:cooldown:",
        recheck: float = 0.25,
        timeout: float = 0.25,
        retry_interval: float = 2.0,
        max_cooldown: float = MAX_COOLDOWN,
    ) -> None:
        try:
            import redis
        except ImportError as exc:
            raise ConfigError(
                "routing.state is a Redis URL but the redis package is not installed",
                hint="pip install 'llmcore-framework[redis]'",
            ) from exc
        self.url = _safe_url(url)  # for messages: the password stays out of them
        self.prefix = prefix
        self.recheck = recheck
        self.retry_interval = retry_interval
        self.max_cooldown = max_cooldown
        self._redis = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._entries: dict[str, Cooldown] = {}
        self._checked = float("-inf")
        self._lock = threading.Lock()
        # Writes not yet in Redis, oldest first: ("put", Cooldown) or ("clear", key|None).
        self._writes: collections.deque[tuple[str, Any]] = collections.deque()
        self._waiters: list[threading.Event] = []
        self._want_refresh = False
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._down_until = 0.0  # monotonic: no Redis call before this after a failure
        self.healthy = True
        self.timeout = timeout
        self._pulled: threading.Event | None = None  # set once the first pull is done

    def __repr__(self) -> str:
        return f"<RedisStore {self.url!r}>"

    # -- the request path: memory only ------------------------------------------------
    def _refresh(self) -> None:
        first = self._pulled is None
        pulled = self._pulled = self._pulled or threading.Event()
        self._want_refresh = True
        self._kick()
        if first:
            # The first read of a process waits (at most the Redis timeout, once) for what
            # other hosts already know: a freshly started host must not call a provider
            # they all cooled down. Later reads never wait.
            pulled.wait(self.timeout)

    def put(self, cooldown: Cooldown) -> None:
        c = self._local(cooldown)
        if c is None:
            self._dropped(self.url, 1)
            return
        with self._lock:
            entries = _live(self._entries)
            _merge(entries, c)
            self._entries = entries
            self._writes.append(("put", c))
        self._kick()

    def clear(self, key: str | None = None) -> None:
        with self._lock:
            self._entries = (
                {} if key is None else {k: c for k, c in self._entries.items() if k != key}
            )
            self._writes.append(("clear", key))
        self._kick()

    def sync(self, timeout: float = 2.0) -> bool:
        """Wait until the queued writes are in Redis and the snapshot is fresh; False when
        Redis did not answer in ``timeout`` seconds (for tools and tests; requests never
        wait)."""
        deadline = time.monotonic() + timeout
        while True:
            done = threading.Event()
            with self._lock:
                self._waiters.append(done)
                self._want_refresh = True
                self._down_until = 0.0
            self._kick()
            if not done.wait(max(0.0, deadline - time.monotonic())):
                return False
            if self.healthy:
                return True
            # A Redis just woken up (SIGCONT, a restart) can fail the first round while it
            # works through its backlog: try again until the deadline.
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(0.1, left))

    def close(self) -> None:
        if self._thread is not None and self._writes:
            self.sync(timeout=1.0)  # give queued cooldowns a chance to reach other hosts
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(1.0)
            self._thread = None
        try:
            self._redis.close()
        except Exception:
            pass

    def _kick(self) -> None:
        t = self._thread
        if t is None or not t.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._stopping = False
                    self._thread = threading.Thread(
                        target=self._work, daemon=True, name="llmcore-redis-state"
                    )
                    self._thread.start()
        self._wake.set()

    # -- the background thread ---------------------------------------------------------
    def _work(self) -> None:
        while not self._stopping:
            self._wake.wait(self.retry_interval if not self.healthy else 5.0)
            self._wake.clear()
            if self._stopping:
                break
            if time.monotonic() < self._down_until:
                self._release_waiters()
                continue
            try:
                if not self.healthy:
                    # Only an answer from Redis says it is back: a pass with nothing to
                    # send must still ask it something before calling it healthy.
                    self._want_refresh = True
                self._drain()
                if self._want_refresh:
                    self._want_refresh = False
                    self._pull()
                if not self.healthy:
                    self.healthy = True
                    print(f"llmcore: cooldown store {self.url} answers again", file=sys.stderr)
            except Exception as exc:  # redis.RedisError, OSError: keep the snapshot
                self.healthy = False
                self._down_until = time.monotonic() + self.retry_interval
                self._warn(
                    f"cooldown store {self.url} is unreachable ({exc}); routing goes "
                    f"on with the cooldowns in memory, rechecking every "
                    f"{self.retry_interval:g}s in the background"
                )
                self._want_refresh = True  # the next pass (after retry_interval) rechecks
            self._release_waiters()

    def _release_waiters(self) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, []
        for w in waiters:
            w.set()

    def _drain(self) -> None:
        """Send the queued writes, oldest first; a failed one stays queued."""
        while self._writes:
            op, arg = self._writes[0]
            if op == "put":
                self._send_put(arg)
            elif arg is None:
                keys = list(self._redis.scan_iter(match=self.prefix + "*", count=500))
                if keys:
                    self._redis.delete(*keys)
            else:
                self._redis.delete(self.prefix + arg)
            self._writes.popleft()

    def _send_put(self, cooldown: Cooldown) -> None:
        ttl_ms = int((cooldown.until - time.time()) * 1000)
        if ttl_ms <= 0:
            return
        name = self.prefix + cooldown.key
        old = self._redis.get(name)
        if old is not None:
            try:
                if float(json.loads(old)["until"]) >= cooldown.until:
                    return
            except (ValueError, TypeError, KeyError, RecursionError):
                pass  # a damaged value: overwrite it
        self._redis.set(name, json.dumps(cooldown.to_dict()), px=ttl_ms)

    def _pull(self) -> None:
        keys = list(self._redis.scan_iter(match=self.prefix + "*", count=500))
        values = self._redis.mget(keys) if keys else []
        raw: dict[str, Any] = {}
        bad = 0
        for k, v in zip(keys, values, strict=False):
            if v is None:
                continue
            key = k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k)
            try:
                raw[key[len(self.prefix) :]] = json.loads(v)
            except (ValueError, TypeError, RecursionError):
                bad += 1  # a foreign or damaged value: its TTL (if any) removes it
        self._dropped(self.url, bad)
        with self._lock:
            entries = self._parse_entries(raw, self.url, self._entries)
            # Writes still queued are newer than what Redis holds: keep them on top.
            for op, arg in self._writes:
                if op == "put":
                    _merge(entries, arg)
                elif arg is None:
                    entries.clear()
                else:
                    entries.pop(arg, None)
            self._entries = entries
        if self._pulled is not None:
            self._pulled.set()


def _safe_url(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@``."""
    import re

    return redact(re.sub(r"//[^/@]*@", "//***@", url))


def check_spec(spec: str) -> str | None:
    """What is wrong with a ``routing.state`` value, or ``None`` when it is usable."""
    spec = (spec or "file").strip()
    if spec in ("file", "memory") or spec.startswith(("redis://", "rediss://", "unix://")):
        return None
    if spec.startswith("file:") and spec[5:].strip():
        return None
    return f"unknown routing.state {_safe_url(spec)!r}"


def open_store(spec: str, *, max_cooldown: float = MAX_COOLDOWN) -> CooldownStore:
    """Build the store ``routing.state`` names."""
    spec = (spec or "file").strip()
    problem = check_spec(spec)
    if problem is not None:
        raise ConfigError(
            problem,
            path="routing.state",
            hint="use file, file:PATH, memory or redis://HOST:PORT/DB",
        )
    if spec == "file":
        return FileStore(max_cooldown=max_cooldown)
    if spec.startswith("file:"):
        return FileStore(spec[5:], max_cooldown=max_cooldown)
    if spec == "memory":
        return MemoryStore(max_cooldown=max_cooldown)
    return RedisStore(spec, max_cooldown=max_cooldown)
