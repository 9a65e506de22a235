"""``llmcore doctor``: what is installed, what is configured, and what answers.

Every probe (a provider's ``health()`` and model list, an agent's ``--version``) runs on its
own daemon thread with short timeouts; the report waits for them together until one
deadline, so a dead host costs the deadline once, not once per provider, and a probe that
hangs never keeps the command alive.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from .runtime import Runtime

#: A row whose status is one of these makes ``llmcore doctor`` exit with 1: something is
#: broken in the installation or config. Backends that are merely not running are not.
BROKEN = ("failed",)


@attrs.define
class Check:
    component: str  # config | plugin | provider | agent | sink
    name: str
    status: str  # ok | failed | disabled | unreachable | missing | no probe | timeout
    version: str | None = None
    models: list[str] | None = None
    latency_s: float | None = None
    detail: str = ""
    hint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def _instance(
    checks: list[Check],
    kind: str,
    name: str,
    cfg: Any,
    types: dict[str, Any],
    build: Callable[[Any], Any],
    disabled_hint: Callable[[str], str | None] | None = None,
) -> Any:
    """Add a check for the provider or agent ``name`` and build it; ``None`` (with the
    check saying why) when it is disabled, its plugin is missing, or it cannot be built."""
    check = Check(kind, name, "failed")
    checks.append(check)
    if not cfg.enabled:
        check.status, check.detail = "disabled", "enabled: false"
        return None
    cls = types.get(cfg.plugin)
    if cls is None:
        disabled = disabled_hint(cfg.plugin) if disabled_hint else None
        if disabled:
            check.status = "disabled"
            check.detail = f"the plugin offering {kind} type {cfg.plugin!r} is disabled"
            check.hint = disabled
            return None
        check.detail = f"no installed plugin offers {kind} type {cfg.plugin!r}"
        check.hint = f"install it: `llmcore install {cfg.plugin}`"
        return None
    try:
        return build(cls)
    except Exception as exc:
        check.detail = f"{type(exc).__name__}: {exc}"
        section = "providers" if kind == "provider" else "agents"
        check.hint = getattr(exc, "hint", None) or f"fix {section}.{name} in llmcore.yaml"
        return None


def _build_provider(cfg: Any, timeout: float, cls: Any) -> Any:
    return cls(_short_timeouts(cfg, timeout))


def _build_agent(cfg: Any, cls: Any) -> Any:
    return cls(cfg)


def _short_timeouts(cfg: Any, seconds: float) -> Any:
    from .config import Timeouts

    t = Timeouts(connect=seconds, read=seconds, write=seconds, pool=seconds)
    return attrs.evolve(cfg, timeout=t, retry=attrs.evolve(cfg.retry, max_attempts=1))


def _probe_provider(provider: Any, check: Check) -> None:
    from .errors import LLMCoreError
    from .secrets import redact

    t0 = time.monotonic()
    try:
        health = provider.health()
    except NotImplementedError:
        check.status = "no probe"
        check.detail = f"{provider.type_name} offers no health probe"
        health = None
    except LLMCoreError as exc:
        check.status, check.detail, check.hint = "unreachable", exc.message, exc.hint
        check.latency_s = time.monotonic() - t0
        return
    except Exception as exc:
        check.status, check.detail = "unreachable", redact(f"{type(exc).__name__}: {exc}")
        check.latency_s = time.monotonic() - t0
        return
    if health is not None:
        check.latency_s = (
            health.latency_s if health.latency_s is not None else (time.monotonic() - t0)
        )
        check.version = health.version
        check.detail = health.detail
        check.hint = health.hint
        check.status = "ok" if health.ok else "unreachable"
        if not health.ok:
            if not check.hint and provider.base_url:
                check.hint = f"start the server at {provider.base_url} or fix its base_url"
            return
    try:
        check.models = [m.name for m in provider.models()]
    except Exception as exc:
        if check.status == "no probe":
            check.status = "unreachable"
            check.detail = redact(getattr(exc, "message", None) or str(exc))
            check.hint = getattr(exc, "hint", None)


def _probe_agent(agent: Any, check: Check) -> None:
    from .runner import missing_program

    if not agent.available():
        err = missing_program(agent)
        check.status, check.detail, check.hint = "missing", err.message, err.hint
        return
    t0 = time.monotonic()
    check.version = agent.version()
    check.latency_s = time.monotonic() - t0
    check.status = "ok"
    check.detail = agent.executable() or ""
    if agent.config.model:
        check.models = [agent.config.model]


def run_checks(
    runtime: Runtime, timeout: float = 1.0, config_error: BaseException | None = None
) -> list[Check]:
    """Check config, plugins, providers, agents and sinks; probes run in parallel."""
    checks: list[Check] = []
    if config_error is not None:
        checks.append(
            Check(
                "config",
                "llmcore.yaml",
                "failed",
                detail=str(config_error),
                hint=getattr(config_error, "hint", None),
            )
        )
    else:
        checks.append(Check("config", runtime.config.source or "(defaults: no file)", "ok"))
    pm = runtime.pm
    # discovery first, so plugins that fail while registering are marked failed below
    provider_types = runtime.provider_types
    agent_types = runtime.agent_types
    sink_types = runtime.sink_types
    for rec in pm.records:
        status = {"loaded": "ok"}.get(rec.status, rec.status)
        hint = None
        if rec.status == "failed":
            hint = f"reinstall it (`llmcore install {rec.name}`) or disable it in plugins.disabled"
        from .plugins import short_name

        checks.append(
            Check(
                "plugin",
                short_name(rec.name),
                status,
                version=rec.version,
                detail=rec.error or ", ".join(h.removeprefix("llmcore_") for h in rec.hooks),
                hint=hint,
            )
        )
    for conflict in pm.conflicts:
        checks.append(
            Check(
                "plugin",
                conflict.type_name,
                "conflict",
                detail=conflict.message(),
                hint="uninstall one of them, or disable it in plugins.disabled",
            )
        )

    jobs: list[tuple[Callable[[Any, Check], None], Any, Check]] = []
    for name, pcfg in runtime.provider_configs().items():
        provider = _instance(
            checks,
            "provider",
            name,
            pcfg,
            provider_types,
            functools.partial(_build_provider, pcfg, timeout),
            runtime.disabled_hint,
        )
        if provider is not None:
            checks[-1].status, checks[-1].detail = "timeout", provider.base_url or ""
            jobs.append((_probe_provider, provider, checks[-1]))
    for name, acfg in runtime.agent_configs().items():
        agent = _instance(
            checks,
            "agent",
            name,
            acfg,
            agent_types,
            functools.partial(_build_agent, acfg),
            runtime.disabled_hint,
        )
        if agent is not None:
            checks[-1].status = "timeout"
            jobs.append((_probe_agent, agent, checks[-1]))
    checks.extend(_sink_checks(runtime, sink_types))
    checks.extend(_budget_checks(runtime))

    threads = []
    for fn, obj, check in jobs:
        t = threading.Thread(
            target=_guarded, args=(fn, obj, check), daemon=True, name=f"llmcore-doctor-{check.name}"
        )
        t.start()
        threads.append((t, check))
    deadline = time.monotonic() + timeout + 0.5
    for t, check in threads:
        t.join(max(0.0, deadline - time.monotonic()))
        if t.is_alive():
            check.status = "timeout"
            check.hint = check.hint or f"no answer within {timeout + 0.5:g} s"
    for _, obj, _c in jobs:
        close = getattr(obj, "close", None)
        if close is not None:
            threading.Thread(target=_quiet, args=(close,), daemon=True).start()
    return checks


def _guarded(fn: Callable[[Any, Check], None], obj: Any, check: Check) -> None:
    try:
        fn(obj, check)
    except Exception as exc:  # a probe bug is a row, not a crash
        from .secrets import redact

        check.status = "failed"
        check.detail = redact(f"{type(exc).__name__}: {exc}")


def _quiet(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception:
        pass


def _budget_checks(runtime: Runtime) -> list[Check]:
    """Rows for every budget and whether it is spent (providers skipped, requests refused)."""
    from datetime import datetime

    from .budgets import for_runtime, limits

    b = for_runtime(runtime)
    if not b.active:
        return []
    out: list[Check] = []
    rows = [(None, runtime.config.routing.budget)] + [
        (n, p.budget) for n, p in (runtime.config.providers or {}).items()
    ]
    for name, budget in rows:
        if budget is None:
            continue
        got = b.over(name, budget)
        label = name or "(global)"
        if got is None:
            out.append(
                Check(
                    "budget",
                    label,
                    "ok",
                    detail=", ".join(f"{k} ${v:.2f}" for k, v in limits(budget)),
                )
            )
        else:
            period, used, limit, reset = got
            when = datetime.fromtimestamp(reset).strftime("%Y-%m-%d %H:%M")
            out.append(
                Check(
                    "budget",
                    label,
                    "budget",
                    detail=f"{period}: ${used:.4f} of ${limit:.2f} spent",
                    hint=f"skipped until {when}" if name else f"every request refused until {when}",
                )
            )
    return out


def _sink_checks(runtime: Runtime, sink_types: dict[str, Any]) -> list[Check]:
    from .config import parse_sink_options, suggest

    mc = runtime.config.metrics
    out = []
    if not mc.enabled:
        return [Check("sink", "metrics", "disabled", detail="metrics.enabled: false")]
    for name in mc.sinks:
        cls = sink_types.get(name)
        if cls is None:
            out.append(
                Check(
                    "sink",
                    name,
                    "failed",
                    detail=f"no installed plugin offers sink {name!r}{suggest(name, sink_types)}",
                    hint="installed sinks: " + ", ".join(sorted(sink_types)),
                )
            )
            continue
        try:
            if getattr(cls, "Options", None) is not None:
                parse_sink_options(name, cls.Options, mc.options.get(name) or {})
        except Exception as exc:
            out.append(
                Check("sink", name, "failed", detail=str(exc), hint=getattr(exc, "hint", None))
            )
            continue
        detail = ""
        status, hint = "ok", None
        if name == "sqlite":
            from .sinks.sqlite import lost_events, lost_path
            from .usage import sqlite_path

            path = sqlite_path(runtime.config)
            detail = str(path)
            lost = lost_events(path)
            if lost is not None:
                # Not "failed": metrics work again once the lock or disk problem is gone.
                status = "lost events"
                detail += (
                    f"; {lost['lost']} event(s) could not be written "
                    f"(last: {lost.get('error') or 'unknown'})"
                )
                hint = (
                    f"a process held the database locked, or the disk is full/read-only; "
                    f"delete {lost_path(path)} to reset the count"
                )
        out.append(Check("sink", name, status, detail=detail, hint=hint))
    return out
