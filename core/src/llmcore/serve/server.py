"""The process side of ``llmcore serve``: one listening socket, N forked workers.

The supervisor binds the socket once, checks the configuration (providers, routes, keys,
bind policy) so mistakes surface before anything forks, makes what the workers share
(the per-key request counters, the prometheus multiprocess directory) and forks the
workers. Each worker runs its own event loop, client and sinks and accepts on the shared
socket, so the kernel spreads connections over them and one dying loses only its own
requests. A worker that dies is replaced. SIGTERM or SIGINT: every worker stops accepting,
lets its in-flight requests finish (``serve.shutdown_timeout``) and exits; then the
supervisor exits.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import Config
    from .keys import SharedCounters

#: Exit status of a worker that could not start: the supervisor stops instead of retrying.
EXIT_CONFIG = 78
LOG_PREFIX = "llmcore serve:"


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(config: Config, host: str) -> None:
    s = config.serve
    if not is_loopback(host) and not s.keys and not s.allow_unauthenticated:
        raise ConfigError(
            f"refusing to listen on {host} with no client keys: anyone who reaches it could "
            "spend through every configured provider",
            hint="add serve.keys (see docs/guide/gateway.md), bind 127.0.0.1, or set "
            "serve.allow_unauthenticated: true if something in front checks clients",
        )


def bind(host: str, port: int, backlog: int = 2048) -> socket.socket:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="choose another --port (0 picks a free one)",
        ) from None
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def prepare_config(config: Config) -> Config:
    """The gateway serves the prometheus sink's metrics itself (``/metrics``), so the sink
    is on whenever metrics are, and never opens its own port."""
    m = config.metrics
    if m.enabled:
        if "prometheus" not in m.sinks:
            m.sinks = [*m.sinks, "prometheus"]
        opts = dict(m.options.get("prometheus") or {})
        opts["serve"] = False
        m.options = {**m.options, "prometheus": opts}
    return config


def check_config(config: Config) -> None:
    """Build what a worker builds (without sinks) so errors show before forking."""
    from ..runtime import Runtime
    from .keys import KeyRing
    from .routes import Routes

    runtime = Runtime(config)
    try:
        Routes(config.serve.models, runtime.providers)
        KeyRing(config.serve.keys, None)
        budgets = [n for n, k in config.serve.keys.items() if k.daily_usd is not None]
        if budgets and not (config.metrics.enabled and "sqlite" in config.metrics.sinks):
            raise ConfigError(
                f"serve.keys.{budgets[0]}.daily_usd needs the sqlite metrics "
                "sink (the spend is read from it)",
                hint="keep metrics.sinks: [sqlite, …]",
            )
    finally:
        for p in (runtime._providers or {}).values():
            p.close()


def build_gateway(config: Config, counters: SharedCounters | None) -> Any:
    from ..client import AsyncClient
    from ..plugins import PluginManager
    from ..usage import sqlite_path
    from .app import Gateway, KeyTagger
    from .keys import KeyRing, sqlite_spent
    from .metrics import GatewayMetrics

    pm = PluginManager(disabled=config.plugins.disabled)
    pm.register(KeyTagger(), name="llmcore-gateway-keys")
    client = AsyncClient(config, plugin_manager=pm)
    sinks = client.runtime.metrics.sinks
    prom = next((s for s in sinks if s.type_name == "prometheus"), None)
    registry = getattr(getattr(prom, "metrics", None), "registry", None)
    metrics = GatewayMetrics(registry) if config.metrics.enabled else None
    spent = (
        sqlite_spent(str(sqlite_path(config)))
        if any(s.type_name == "sqlite" for s in sinks)
        else None
    )
    keyring = KeyRing(config.serve.keys, counters, spent)
    return Gateway(
        client, keyring, max_concurrency=config.serve.max_concurrency, prometheus=metrics
    )


def tune_gc() -> None:
    """Set the cyclic garbage collector for a long-running server, once it is set up.

    What was built so far (modules, config, providers, the app) lives as long as the
    worker: ``gc.freeze`` takes it out of every later collection. A request makes a few
    hundred short-lived containers, nearly all freed by reference counting; with the
    default threshold (700) the youngest generation was collected every few requests,
    a measured 3-5% of a worker's CPU. 10,000 keeps young garbage to a few MB.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


async def worker_main(sock: socket.socket, config: Config, counters: SharedCounters | None) -> None:
    from aiohttp import web

    gateway = build_gateway(config, counters)
    # Metrics events reach the sinks after the answer is written, not before it.
    gateway.client.runtime.metrics.deliver_later(asyncio.get_running_loop())
    app = gateway.app(config.serve.max_body_bytes)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=config.serve.shutdown_timeout,
    )
    await runner.setup()
    site = web.SockSite(runner, sock)
    await site.start()
    tune_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    try:
        await runner.cleanup()  # stop accepting; in-flight requests finish
    finally:
        await gateway.client.aclose()


def _worker(sock: socket.socket, config: Config, counters: SharedCounters | None) -> int:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        asyncio.run(worker_main(sock, config, counters))
    except ConfigError as exc:
        print(f"{LOG_PREFIX} worker {os.getpid()}: {exc}", file=sys.stderr, flush=True)
        return EXIT_CONFIG
    except BaseException as exc:  # never a traceback with a prompt in it
        from ..secrets import redact

        print(
            f"{LOG_PREFIX} worker {os.getpid()} failed: {type(exc).__name__}: {redact(str(exc))}",
            file=sys.stderr,
            flush=True,
        )
        return 1
    return 0


class Supervisor:
    def __init__(self, config: Config, host: str, port: int, workers: int) -> None:
        self.config = config
        self.host = host
        self.port = port
        self.workers = workers
        self.children: dict[int, float] = {}  # pid → start time
        self.stopping = False
        self.failed_starts = 0

    def spawn(self, sock: socket.socket, counters: SharedCounters | None) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _worker(sock, self.config, counters)
            finally:
                os._exit(code)
        self.children[pid] = time.monotonic()

    def _stop(self, signum: int, _frame: Any) -> None:
        if not self.stopping:
            print(
                f"{LOG_PREFIX} stopping: in-flight requests finish, new ones are refused",
                file=sys.stderr,
                flush=True,
            )
        self.stopping = True
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def run(self) -> int:
        from .keys import SharedCounters

        # prometheus_client picks its value storage when first imported: the multiprocess
        # directory must be set before anything (the config check included) imports it.
        # One worker keeps its values in memory: multiprocess values cost a lock, a pid
        # check and an mmap write per increment, a tenth of a worker's CPU per request.
        prom_dir = None
        if self.workers > 1:
            prom_dir = tempfile.mkdtemp(prefix="llmcore-serve-prom-")
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = prom_dir
        try:
            config = prepare_config(self.config)
            check_bind(config, self.host)
            check_config(config)
            sock = bind(self.host, self.port)
        except BaseException:
            if prom_dir:
                shutil.rmtree(prom_dir, ignore_errors=True)
            raise
        actual_port = sock.getsockname()[1]
        counters = SharedCounters(len(config.serve.keys)) if config.serve.keys else None
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        shown = f"[{self.host}]" if ":" in self.host else self.host
        print(
            f"{LOG_PREFIX} listening on http://{shown}:{actual_port} "
            f"({self.workers} worker{'s' if self.workers != 1 else ''})",
            flush=True,
        )
        code = 0
        try:
            for _ in range(self.workers):
                self.spawn(sock, counters)
            code = self._supervise(sock, counters)
        finally:
            sock.close()
            if self.children:
                self._stop(signal.SIGTERM, None)
            self._reap_all()
            if prom_dir:
                shutil.rmtree(prom_dir, ignore_errors=True)
        return code

    def _supervise(self, sock: socket.socket, counters: SharedCounters | None) -> int:
        from prometheus_client import multiprocess

        code = 0
        while self.children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            started = self.children.pop(pid, None)
            if started is None:
                continue
            if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
            exit_code = os.waitstatus_to_exitcode(status)
            if self.stopping:
                continue
            if exit_code == EXIT_CONFIG:
                code = 2
                self._stop(signal.SIGTERM, None)
                continue
            print(
                f"{LOG_PREFIX} worker {pid} ended ({exit_code}); starting another",
                file=sys.stderr,
                flush=True,
            )
            self.failed_starts = self.failed_starts + 1 if time.monotonic() - started < 2.0 else 0
            if self.failed_starts >= 5:
                print(
                    f"{LOG_PREFIX} workers keep dying at start; giving up",
                    file=sys.stderr,
                    flush=True,
                )
                code = 1
                self._stop(signal.SIGTERM, None)
                continue
            self.spawn(sock, counters)
        return code

    def _reap_all(self) -> None:
        deadline = time.monotonic() + self.config.serve.shutdown_timeout + 5
        while self.children and time.monotonic() < deadline:
            for pid in list(self.children):
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    done = pid
                if done:
                    self.children.pop(pid, None)
            time.sleep(0.05)
        for pid in self.children:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
