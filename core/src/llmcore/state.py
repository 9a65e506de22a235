"""Where cooldowns live, so that every process (and, with Redis, every host) sees them.

The router asks :meth:`CooldownStore.active` on every request, so that call must be cheap:
each store keeps a snapshot in memory and refreshes it at most every ``recheck`` seconds
(the file store only when the file's mtime changed). Writes happen only when something
goes wrong (a 429, a provider crossing its failure threshold), and go through at once.

A store never raises into a request: an unreadable file, a held lock or an unreachable
Redis is reported once on stderr and the store carries on with what it has in memory.

``routing.state`` picks the store: ``file`` (default: ``state.json`` in the user state
directory), ``file:PATH``, ``memory`` (this process only) or ``redis://HOST:PORT/DB``.
"""

from __future__ import annotations

import json
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


@attrs.frozen
class Cooldown:
    """``key`` (``provider`` or ``provider/model``) is skipped until ``until`` (epoch seconds)."""

    key: str
    until: float
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"until": self.until, "reason": self.reason}


class CooldownStore:
    """The interface: read the active cooldowns, add one, remove one."""

    #: How often (seconds) the in-memory snapshot is refreshed from the shared backend.
    recheck: float = 0.25

    def active(self, now: float | None = None) -> Mapping[str, Cooldown]:
        """The cooldowns still running at ``now`` (default: the current time)."""
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

    def _warn(self, text: str) -> None:
        """Report a store problem once per store: requests go on regardless."""
        if not self._warned:
            self._warned = True
            print(f"llmcore: {redact(text)}", file=sys.stderr)


def _live(entries: Mapping[str, Cooldown], now: float) -> dict[str, Cooldown]:
    return {k: c for k, c in entries.items() if c.until > now}


def _merge(entries: dict[str, Cooldown], cooldown: Cooldown) -> None:
    old = entries.get(cooldown.key)
    if old is None or old.until < cooldown.until:
        entries[cooldown.key] = cooldown


class MemoryStore(CooldownStore):
    """Cooldowns in this process only (``routing.state: memory``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, Cooldown] = {}

    def active(self, now: float | None = None) -> Mapping[str, Cooldown]:
        if not self._entries:
            return {}
        return _live(self._entries, time.time() if now is None else now)

    def put(self, cooldown: Cooldown) -> None:
        with self._lock:
            entries = _live(self._entries, time.time())
            _merge(entries, cooldown)
            self._entries = entries

    def clear(self, key: str | None = None) -> None:
        with self._lock:
            self._entries = {} if key is None else {
                k: c for k, c in self._entries.items() if k != key}


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
        return _live(self._entries, time.time() if now is None else now)

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
    never lose each other's cooldowns. Reads need no lock.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 recheck: float = 0.25, lock_timeout: float = 5.0) -> None:
        self.path = Path(path).expanduser() if path else default_state_path()
        self.recheck = recheck
        self.lock_timeout = lock_timeout
        self._entries: dict[str, Cooldown] = {}
        self._mtime: int | None = None  # st_mtime_ns of the file the snapshot came from
        self._checked = float("-inf")  # monotonic time of the last stat
        self._mutex = threading.Lock()
        self._corrupt_reported = False

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
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}, True
        except (OSError, UnicodeDecodeError) as exc:
            self._report_corrupt(str(exc))
            return {}, False
        try:
            data = json.loads(text)
            raw = data["cooldowns"]
            entries = {
                str(k): Cooldown(str(k), float(v["until"]), str(v.get("reason", "")))
                for k, v in raw.items()
            }
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            self._report_corrupt(f"{type(exc).__name__}: {exc}")
            return {}, False
        return entries, True

    def _report_corrupt(self, why: str) -> None:
        if not self._corrupt_reported:
            self._corrupt_reported = True
            print(f"llmcore: cooldown state {self.path} was unreadable ({redact(why)[:200]}); "
                  "it is replaced by a fresh one", file=sys.stderr)

    def _recover(self) -> None:
        """Replace a corrupt file (under the lock, in case another process fixed it first)."""
        self._update(lambda entries: None)

    # -- writing ----------------------------------------------------------------------
    def put(self, cooldown: Cooldown) -> None:
        self._update(lambda entries: _merge(entries, cooldown))

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
                    entries, _ = self._read()
                    entries = _live(entries, time.time())
                    change(entries)
                    self._write(entries)
                    self._mtime = os.stat(self.path).st_mtime_ns
                    self._entries = entries
                    self._checked = time.monotonic()
            except Timeout:
                self._warn(f"cooldown state {self.path} is locked by another process; "
                           "this process keeps its cooldowns in memory for now")
                change(self._entries)
            except OSError as exc:
                self._warn(f"cannot write cooldown state {self.path}: {exc}; "
                           "cooldowns are kept in memory")
                change(self._entries)

    def _write(self, entries: Mapping[str, Cooldown]) -> None:
        data = {"version": STATE_VERSION,
                "cooldowns": {k: c.to_dict() for k, c in sorted(entries.items())}}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=1)
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
    """

    def __init__(self, url: str, *, prefix: str = "llmcore:cooldown:", recheck: float = 0.25,
                 timeout: float = 0.5) -> None:
        try:
            import redis
        except ImportError as exc:
            raise ConfigError(
                "routing.state is a Redis URL but the redis package is not installed",
                hint="pip install 'llmcore-framework[redis]'") from exc
        self.url = _safe_url(url)  # for messages: the password stays out of them
        self.prefix = prefix
        self.recheck = recheck
        self._redis = redis.Redis.from_url(url, socket_timeout=timeout,
                                           socket_connect_timeout=timeout)
        self._entries: dict[str, Cooldown] = {}
        self._checked = float("-inf")

    def __repr__(self) -> str:
        return f"<RedisStore {self.url!r}>"


    def _refresh(self) -> None:
        try:
            keys = list(self._redis.scan_iter(match=self.prefix + "*", count=500))
            values = self._redis.mget(keys) if keys else []
        except Exception as exc:  # redis.RedisError, OSError: keep the last snapshot
            self._warn(f"cooldown store {self.url} is unreachable ({exc}); "
                       "using the last known cooldowns")
            return
        entries: dict[str, Cooldown] = {}
        for k, v in zip(keys, values, strict=False):
            if v is None:
                continue
            key = (k.decode() if isinstance(k, bytes) else str(k))[len(self.prefix):]
            try:
                d = json.loads(v)
                entries[key] = Cooldown(key, float(d["until"]), str(d.get("reason", "")))
            except (ValueError, TypeError, KeyError):
                continue  # a foreign or damaged value: ignore it, its TTL will remove it
        self._entries = entries

    def put(self, cooldown: Cooldown) -> None:
        _merge(self._entries, cooldown)
        ttl_ms = int((cooldown.until - time.time()) * 1000)
        if ttl_ms <= 0:
            return
        name = self.prefix + cooldown.key
        try:
            old = self._redis.get(name)
            if old is not None:
                try:
                    if float(json.loads(old)["until"]) >= cooldown.until:
                        return
                except (ValueError, TypeError, KeyError):
                    pass
            self._redis.set(name, json.dumps(cooldown.to_dict()), px=ttl_ms)
        except Exception as exc:
            self._warn(f"cannot write to cooldown store {self.url} ({exc}); "
                       "cooldowns are kept in memory")

    def clear(self, key: str | None = None) -> None:
        if key is None:
            self._entries = {}
        else:
            self._entries.pop(key, None)
        try:
            if key is None:
                keys = list(self._redis.scan_iter(match=self.prefix + "*", count=500))
                if keys:
                    self._redis.delete(*keys)
            else:
                self._redis.delete(self.prefix + key)
        except Exception as exc:
            self._warn(f"cannot write to cooldown store {self.url} ({exc})")

    def close(self) -> None:
        try:
            self._redis.close()
        except Exception:
            pass


def _safe_url(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@``."""
    import re

    return redact(re.sub(r"//[^/@]*@", "//***@", url))


def open_store(spec: str) -> CooldownStore:
    """Build the store ``routing.state`` names."""
    spec = (spec or "file").strip()
    if spec == "file":
        return FileStore()
    if spec.startswith("file:"):
        return FileStore(spec[5:])
    if spec == "memory":
        return MemoryStore()
    if spec.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(spec)
    raise ConfigError(f"unknown routing.state {_safe_url(spec)!r}", path="routing.state",
                      hint="use file, file:PATH, memory or redis://HOST:PORT/DB")
