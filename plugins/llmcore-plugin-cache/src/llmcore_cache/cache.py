"""The cache itself: options, keys, the SQLite and Redis stores, storing and replaying answers."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import llmcore

#: Bumped when the stored entry or the key changes shape: old entries are then just misses.
FORMAT = 1
BACKENDS = ("auto", "sqlite", "redis")


@attrs.define
class CacheOptions:
    """The ``cache:`` section of ``llmcore.yaml``."""

    enabled: bool = True  # with a cache: section; no section, no cache
    #: ``auto``: Redis when ``routing.state`` (or ``redis_url``) is a redis:// URL, else SQLite.
    backend: str = "auto"
    path: str | None = None  # SQLite file; default: cache.db in the user data dir
    redis_url: str | None = None  # default: routing.state when it is a redis:// URL
    ttl_seconds: float = 86400.0  # how long an answer is reused
    max_entries: int = 10000  # beyond this, the least recently used go first
    #: Cache requests with temperature > 0 too (they ask for varied answers).
    cache_sampled: bool = False
    #: Key on the provider too (by default any provider's answer serves the same request).
    per_provider: bool = False


def check(opts: CacheOptions) -> None:
    if opts.backend not in BACKENDS:
        import difflib

        close = difflib.get_close_matches(opts.backend, BACKENDS, n=1)
        raise llmcore.ConfigError(
            f"cache.backend: unknown backend {opts.backend!r}"
            + (f", did you mean {close[0]}?" if close else ""),
            hint="one of: " + ", ".join(BACKENDS),
        )
    if opts.ttl_seconds <= 0 or opts.max_entries < 1:
        raise llmcore.ConfigError("cache: ttl_seconds must be positive and max_entries at least 1")


# -- which store, per configuration ------------------------------------------------------------
#: The options without a ``cache:`` section (one object: this is asked on every call).
_OFF = CacheOptions(enabled=False)
_STORES: dict[tuple[Any, ...], Any] = {}
_LOCK = threading.Lock()


def options_of(config: Any) -> CacheOptions:
    """The ``cache:`` section; without one the cache is off (installing the plugin must not
    change what repeated requests answer until the user asks for it)."""
    if config is None or "cache" not in getattr(config, "sections", {}):
        return _OFF
    opts: CacheOptions = llmcore.config_section(config, "cache", CacheOptions)
    return opts


def cache_for(config: Any) -> tuple[CacheOptions, Any]:
    """The options and the store for ``config`` (built once per store spec)."""
    opts = options_of(config)
    if not opts.enabled:
        return opts, None
    spec = store_spec(opts, config)
    with _LOCK:
        got = _STORES.get(spec)
        if got is None:
            check(opts)
            got = _STORES[spec] = (
                RedisStore(spec[1], opts)
                if spec[0] == "redis"
                else SqliteStore(Path(spec[1]), opts)
            )
    return opts, got


def store_spec(opts: CacheOptions, config: Any) -> tuple[str, str, float, int]:
    state = str(getattr(getattr(config, "routing", None), "state", "") or "")
    url = opts.redis_url or (state if state.startswith(("redis://", "rediss://")) else None)
    if opts.backend == "redis" or (opts.backend == "auto" and url):
        if not url:
            raise llmcore.ConfigError(
                "cache.backend is redis but no Redis URL is known",
                hint="set cache.redis_url or routing.state: redis://…",
            )
        return ("redis", url, opts.ttl_seconds, opts.max_entries)
    return (
        "sqlite",
        str(default_path() if opts.path is None else Path(opts.path).expanduser()),
        opts.ttl_seconds,
        opts.max_entries,
    )


def default_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("llmcore")) / "cache.db"


# -- what is cached, and under which key ------------------------------------------------------
def cacheable(call: Any, opts: CacheOptions) -> bool:
    if call.operation not in ("chat", "stream"):
        return False
    t = getattr(call.request, "temperature", None)
    return not (t is not None and t > 0 and not opts.cache_sampled)


def key_of(call: Any, opts: CacheOptions) -> str:
    """A hash of the request as the caller asked it: messages, model and options, without
    what does not change the answer (streaming or not, the timeout)."""
    d = call.request.to_dict()
    for k in ("stream", "timeout"):
        d.pop(k, None)
    d = {k: v for k, v in d.items() if v not in (None, {}, [])}
    d["messages"] = [{k: v for k, v in m.items() if v is not None} for m in d["messages"]]
    if opts.per_provider:
        d["provider"] = call.provider.name
    text = json.dumps([FORMAT, d], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def entry_of(resp: Any) -> dict[str, Any]:
    """What is stored of a chat answer."""
    return {
        "content": resp.content,
        "thinking": resp.thinking,
        "model": resp.model,
        "finish_reason": resp.finish_reason,
        "tool_calls": resp.tool_calls,
        "usage": resp.usage.to_dict() if resp.usage else None,
        "chunks": None,
    }


def response_of(hit: dict[str, Any], call: Any) -> Any:
    """A stored answer as a chat response. Nothing was spent on it: usage and cost are 0
    (the tokens it saved are in the ``cache_hit`` event)."""
    return llmcore.ChatResponse(
        content=hit.get("content") or "",
        model=hit.get("model") or call.request.model,
        finish_reason=hit.get("finish_reason"),
        tool_calls=hit.get("tool_calls"),
        thinking=hit.get("thinking"),
        usage=llmcore.Usage(),
        cost_usd=0.0,
    )


def _chunks(hit: dict[str, Any], call: Any) -> list[Any]:
    model = hit.get("model") or call.request.model
    pieces = hit.get("chunks") or [hit.get("content") or ""]
    out = [llmcore.StreamChunk(content=p, model=model) for p in pieces if p]
    out.append(
        llmcore.StreamChunk(
            finish_reason=hit.get("finish_reason") or "stop",
            tool_calls=hit.get("tool_calls"),
            usage=llmcore.Usage(),
            model=model,
        )
    )
    return out


def replay(hit: dict[str, Any], call: Any) -> Iterator[Any]:
    """A stored answer as a stream, in the pieces it first came in."""
    return iter(_chunks(hit, call))


async def replay_async(hit: dict[str, Any], call: Any) -> AsyncIterator[Any]:
    for c in _chunks(hit, call):
        yield c


class _Gathered:
    """A stream's pieces as they pass; an entry only once the stream finished."""

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.thinking: list[str] = []
        self.last: Any = None

    def add(self, chunk: Any) -> None:
        if chunk.content:
            self.pieces.append(chunk.content)
        if chunk.thinking:
            self.thinking.append(chunk.thinking)
        self.last = chunk

    def entry(self) -> dict[str, Any] | None:
        last = self.last
        if last is None or last.finish_reason is None:
            return None  # ended without saying so: not a whole answer
        return {
            "content": "".join(self.pieces),
            "thinking": "".join(self.thinking) or None,
            "model": last.model,
            "finish_reason": last.finish_reason,
            "tool_calls": last.tool_calls,
            "usage": last.usage.to_dict() if last.usage else None,
            "chunks": self.pieces,
        }


def stored_stream(result: Any, put: Callable[[dict[str, Any]], None]) -> Iterator[Any]:
    """Pass the provider's stream through; store it when it ended well."""
    got = _Gathered()
    for chunk in result:
        got.add(chunk)
        yield chunk
    entry = got.entry()
    if entry is not None:
        put(entry)


async def stored_stream_async(
    result: Any, put: Callable[[dict[str, Any]], None]
) -> AsyncIterator[Any]:
    got = _Gathered()
    async for chunk in result:
        got.add(chunk)
        yield chunk
    entry = got.entry()
    if entry is not None:
        put(entry)


# -- stores ---------------------------------------------------------------------------------------
class SqliteStore:
    """One SQLite file (WAL, 0600: it holds answers), shared by every process using it."""

    kind = "sqlite"

    def __init__(self, path: Path, opts: CacheOptions) -> None:
        self.path = path
        self.ttl = opts.ttl_seconds
        self.max_entries = opts.max_entries
        self._local = threading.local()

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            import sqlite3

            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            conn = sqlite3.connect(str(self.path), timeout=10.0, isolation_level=None)
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, "
                "value TEXT NOT NULL, created REAL NOT NULL, expires REAL NOT NULL, "
                "used REAL NOT NULL, hits INTEGER NOT NULL DEFAULT 0)"
            )
            conn.execute("CREATE INDEX IF NOT EXISTS ix_entries_used ON entries(used)")
            self._local.conn = conn
        return conn

    def get(self, key: str) -> dict[str, Any] | None:
        conn = self._conn()
        now = time.time()
        row = conn.execute(
            "SELECT value FROM entries WHERE key = ? AND expires > ?", (key, now)
        ).fetchone()
        if row is None:
            return None
        conn.execute("UPDATE entries SET used = ?, hits = hits + 1 WHERE key = ?", (now, key))
        value: dict[str, Any] = json.loads(row[0])
        return value

    def put(self, key: str, entry: dict[str, Any]) -> None:
        conn = self._conn()
        now = time.time()
        conn.execute(
            "INSERT OR REPLACE INTO entries (key, value, created, expires, used) "
            "VALUES (?, ?, ?, ?, ?)",
            (key, json.dumps(entry), now, now + self.ttl, now),
        )
        conn.execute("DELETE FROM entries WHERE expires <= ?", (now,))
        conn.execute(
            "DELETE FROM entries WHERE key IN (SELECT key FROM entries ORDER BY "
            "used DESC LIMIT -1 OFFSET ?)",
            (self.max_entries,),
        )

    def stats(self) -> dict[str, Any]:
        if not self.path.exists():
            return {
                "backend": "sqlite",
                "location": str(self.path),
                "entries": 0,
                "hits": 0,
                "bytes": 0,
            }
        conn = self._conn()
        n, hits, size = conn.execute(
            "SELECT count(*), coalesce(sum(hits), 0), coalesce(sum(length(value)), 0) "
            "FROM entries WHERE expires > ?",
            (time.time(),),
        ).fetchone()
        return {
            "backend": "sqlite",
            "location": str(self.path),
            "entries": n,
            "hits": hits,
            "bytes": size,
        }

    def clear(self) -> int:
        if not self.path.exists():
            return 0
        count: int = self._conn().execute("DELETE FROM entries").rowcount
        return count


class RedisStore:
    """Entries as Redis strings with a TTL, plus a sorted set of keys by last use (to keep
    at most ``max_entries``) and a hit counter, under the ``llmcore:cache:`` prefix."""

    kind = "redis"
    PREFIX = "llmcore:cache:"

    def __init__(self, url: str, opts: CacheOptions) -> None:
        import redis

        self.url = url
        self.ttl = opts.ttl_seconds
        self.max_entries = opts.max_entries
        # Any: redis-py types every reply as a union of sync and async answers, so each
        # use would need a cast; the replies of this sync client are bytes and ints.
        self.r: Any = redis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0)

    def get(self, key: str) -> dict[str, Any] | None:
        raw = self.r.get(self.PREFIX + key)
        if raw is None:
            return None
        pipe = self.r.pipeline()
        pipe.zadd(self.PREFIX + "used", {key: time.time()})
        pipe.incr(self.PREFIX + "hits")
        pipe.execute()
        value: dict[str, Any] = json.loads(raw)
        return value

    def put(self, key: str, entry: dict[str, Any]) -> None:
        pipe = self.r.pipeline()
        pipe.set(self.PREFIX + key, json.dumps(entry), px=int(self.ttl * 1000))
        pipe.zadd(self.PREFIX + "used", {key: time.time()})
        pipe.zremrangebyscore(self.PREFIX + "used", 0, time.time() - self.ttl)
        pipe.execute()
        extra = int(self.r.zcard(self.PREFIX + "used")) - self.max_entries
        if extra > 0:
            old = [k.decode() for k, _ in self.r.zpopmin(self.PREFIX + "used", extra)]
            if old:
                self.r.delete(*(self.PREFIX + k for k in old))

    def stats(self) -> dict[str, Any]:
        keys = [k.decode() for k in self.r.zrange(self.PREFIX + "used", 0, -1)]
        alive = sum(1 for k in keys if self.r.exists(self.PREFIX + k))
        size = sum(int(self.r.strlen(self.PREFIX + k)) for k in keys)
        return {
            "backend": "redis",
            "location": llmcore.redact(self.url),
            "entries": alive,
            "hits": int(self.r.get(self.PREFIX + "hits") or 0),
            "bytes": size,
        }

    def clear(self) -> int:
        keys = [k.decode() for k in self.r.zrange(self.PREFIX + "used", 0, -1)]
        n = int(self.r.delete(*(self.PREFIX + k for k in keys))) if keys else 0
        self.r.delete(self.PREFIX + "used", self.PREFIX + "hits")
        return n
