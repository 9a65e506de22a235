"""Several vLLM replicas behind one provider: which one takes the next request.

The least busy healthy replica wins: busy = requests running + waiting on the server
(from ``/metrics``, while fresh) + requests this process has in flight to it; ties go to
the replica used least recently, so sequential calls spread too. A replica that fails
with a connection error or a failing ``/health`` is skipped for ``recheck_after``
seconds; then its ``/health`` is probed before it takes requests again.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import TYPE_CHECKING, Any

import attrs
import llmcore

if TYPE_CHECKING:
    from . import VLLMProvider

RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
#: vLLM ≥ 0.10 (V1 engine) names it kv_cache_usage_perc; older versions gpu_cache_usage_perc.
KV_CACHE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
_PROBE_TIMEOUT = 2.0


def parse_metrics(text: str) -> dict[str, float]:
    """vLLM's Prometheus text → ``{"running", "waiting", "kv_cache_usage"}`` (summed over
    the label sets, e.g. several models); keys missing when the server does not export
    them."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    names = {
        RUNNING: "running",
        WAITING: "waiting",
        KV_CACHE[0]: "kv_cache_usage",
        KV_CACHE[1]: "kv_cache_usage",
    }
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = names.get(sample.name)
            if key is not None:
                out[key] = out.get(key, 0.0) + float(sample.value)
    return out


@attrs.define
class Replica:
    """One vLLM server: its URLs, what this process has in flight, and what it reported."""

    url: str  # the OpenAI base, with /v1
    in_flight: int = 0
    down: bool = False
    down_until: float = 0.0
    last_error: str | None = None
    running: float | None = None
    waiting: float | None = None
    kv_cache_usage: float | None = None
    metrics_at: float = 0.0
    last_pick: int = 0

    @property
    def root(self) -> str:
        """The server root (``/health``, ``/metrics``, ``/tokenize`` live there)."""
        return self.url[:-3] if self.url.endswith("/v1") else self.url

    @property
    def up(self) -> bool:
        return not self.down

    @property
    def server_load(self) -> float | None:
        if self.running is None and self.waiting is None:
            return None
        return (self.running or 0.0) + (self.waiting or 0.0)

    def to_dict(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["root"] = self.root
        return d


class ReplicaSet(llmcore.Endpoint):
    """The endpoint strategy of a vLLM provider: which replica takes the next call."""

    def __init__(self, provider: VLLMProvider, urls: list[str]) -> None:
        super().__init__(urls[0])
        self.provider = provider
        self.all = [Replica(u.rstrip("/")) for u in urls]
        self._by_url = {r.url: r for r in self.all}
        self.multi = len(self.all) > 1
        self._lock = threading.Lock()
        self._seq = itertools.count(1)

    @property
    def _opts(self) -> Any:
        return self.provider.options

    @property
    def urls(self) -> list[str]:
        return [r.url for r in self.all]

    def tries(self) -> int:
        return len(self.all)

    def can_fail_over(self) -> bool:
        return self.any_healthy()

    # -- choosing ----------------------------------------------------------------------
    def pick(self) -> str:
        if not self.multi:
            return self.all[0].url
        now = time.monotonic()
        ttl = self._opts.metrics_ttl
        with self._lock:
            usable = [r for r in self.all if not r.down]
            if not usable:
                # Everything is down: try the one that went down first, so the caller
                # gets that server's real error rather than a vague one.
                usable = [min(self.all, key=lambda r: r.down_until)]

            def busy(r: Replica) -> tuple[float, int]:
                load = r.server_load if ttl and now - r.metrics_at <= ttl else None
                return ((load or 0.0) + r.in_flight, r.last_pick)

            chosen = min(usable, key=busy)
            chosen.in_flight += 1
            chosen.last_pick = next(self._seq)
            return chosen.url

    def release(self, url: str, error: BaseException | None) -> None:
        if not self.multi:
            return
        r = self._by_url.get(url)
        if r is None:
            return
        with self._lock:
            r.in_flight = max(0, r.in_flight - 1)
            if isinstance(error, llmcore.ProviderConnectionError):
                self._mark_down(r, error.message)
            elif error is None or isinstance(error, llmcore.ProviderError):
                # The server answered (even with an error status): it is up.
                r.down = False
                r.last_error = None if error is None else r.last_error

    def _mark_down(self, r: Replica, why: str) -> None:
        r.down = True
        r.down_until = time.monotonic() + self._opts.recheck_after
        r.last_error = why

    def any_healthy(self) -> bool:
        return any(not r.down for r in self.all)

    def any_up(self) -> Replica:
        return next((r for r in self.all if not r.down), self.all[0])

    # -- refreshing (health of failed replicas, load) ----------------------------------
    def _due(self, force_metrics: bool) -> tuple[list[Replica], list[Replica]]:
        now = time.monotonic()
        ttl = self._opts.metrics_ttl
        recheck = [r for r in self.all if r.down and now >= r.down_until]
        stale = [
            r
            for r in self.all
            if not r.down and (force_metrics or (ttl and now - r.metrics_at > ttl))
        ]
        return recheck, stale

    def refresh(self, transport: Any = None, force_metrics: bool = False) -> None:
        """Probe replicas whose skip time is over, and read ``/metrics`` where stale."""
        recheck, stale = self._due(force_metrics)
        for r in recheck:
            self._set_health(r, self._probe(r.url, "/health"))
        for r in stale:
            self._set_metrics(r, self._probe(r.url, "/metrics", text=True))

    async def arefresh(self, transport: Any = None, force_metrics: bool = False) -> None:
        import asyncio

        recheck, stale = self._due(force_metrics)
        if not (recheck or stale):
            return
        probes = [self._aprobe(r.url, "/health") for r in recheck]
        probes += [self._aprobe(r.url, "/metrics", text=True) for r in stale]
        results = await asyncio.gather(*probes)
        for r, res in zip(recheck, results[: len(recheck)], strict=True):
            self._set_health(r, res)
        for r, res in zip(stale, results[len(recheck) :], strict=True):
            self._set_metrics(r, res)

    def check(self) -> list[Replica]:
        """Probe ``/health`` of every replica now and record the answers."""
        for r in self.all:
            self._set_health(r, self._probe(r.url, "/health"))
        return list(self.all)

    def _set_health(self, r: Replica, result: tuple[bool, str]) -> None:
        ok, detail = result
        with self._lock:
            if ok:
                r.down, r.last_error = False, None
            else:
                self._mark_down(r, detail)

    def _set_metrics(self, r: Replica, result: tuple[bool, str]) -> None:
        ok, text = result
        if not ok:
            # /metrics may be disabled; then the choice falls back to in-flight counts.
            r.metrics_at = time.monotonic()
            return
        try:
            m = parse_metrics(text)
        except ValueError:
            m = {}
        with self._lock:
            r.running = m.get("running")
            r.waiting = m.get("waiting")
            r.kv_cache_usage = m.get("kv_cache_usage")
            r.metrics_at = time.monotonic()

    def _probe(self, url: str, path: str, text: bool = False) -> tuple[bool, str]:
        """GET ``path`` at the root of replica ``url`` with a short timeout: (answered
        200, body or why not)."""
        req = llmcore.HTTPRequest("GET", path, root=True, timeout=_PROBE_TIMEOUT)
        try:
            resp = self.provider.send(req, base=url)
        except llmcore.ProviderError as exc:
            return False, f"{url[:-3] if url.endswith('/v1') else url}{path}: {exc.message}"
        return True, resp.text() if text else ""

    async def _aprobe(self, url: str, path: str, text: bool = False) -> tuple[bool, str]:
        req = llmcore.HTTPRequest("GET", path, root=True, timeout=_PROBE_TIMEOUT)
        try:
            resp = await self.provider.asend(req, base=url)
        except llmcore.ProviderError as exc:
            return False, f"{url[:-3] if url.endswith('/v1') else url}{path}: {exc.message}"
        return True, resp.text() if text else ""
