"""Finding and loading the plugins installed through the ``llmcore`` entry-point group.

This is the part of the plugin machinery that needs nothing of the core but the hook
specifications: enumerate entry points, honour ``plugins.disabled`` / ``LLMCORE_PLUGINS``,
import and register each plugin on its own (one that fails is recorded, the others keep
working; ``LLMCORE_STRICT_PLUGINS=1`` raises instead). ``plugins.PluginManager`` builds on
it and adds the core's own types; ``config`` uses it alone to learn the sections plugins
declare, so reading a config never imports the providers and sinks (which read config).
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
from collections.abc import Iterable
from typing import Any

import attrs
import pluggy

from . import hookspecs
from .errors import PluginError
from .hookspecs import HOOK_API_VERSION, PROJECT

ENTRY_POINT_GROUP = "llmcore"
# The core's name on the package index; the import package stays ``llmcore`` (the name
# ``llmcore`` there belongs to an unrelated project: docs/plugins/publishing.md).
CORE_DISTRIBUTION = "llmcore-framework"
STRICT_ENV = "LLMCORE_STRICT_PLUGINS"
ONLY_ENV = "LLMCORE_PLUGINS"


@attrs.define
class PluginRecord:
    """What ``llmcore plugins`` shows for one plugin."""

    name: str
    version: str | None
    status: str  # loaded | disabled | failed
    error: str | None = None
    hooks: list[str] = attrs.field(factory=list)
    entry_point: str | None = None
    module: str | None = None
    #: Why a disabled plugin is disabled: ``plugins.disabled`` or ``LLMCORE_PLUGINS``.
    disabled_by: str | None = None
    #: Type names this plugin offers that another plugin offers too (see TypeConflict).
    conflicts: list[str] = attrs.field(factory=list)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def strict() -> bool:
    """``LLMCORE_STRICT_PLUGINS`` set: a plugin failure raises instead of being recorded."""
    return os.environ.get(STRICT_ENV, "") not in ("", "0", "false")


def short_name(dist_name: str) -> str:
    """``llmcore-plugin-claude-code`` → ``claude-code``."""
    return re.sub(r"^llmcore[-_]plugin[-_]", "", dist_name.lower()).replace("_", "-")


def matches(names: Iterable[str], dist: str, ep_name: str) -> bool:
    """Does one of ``names`` (as a user writes them) name this distribution or entry point?"""
    wanted = {n.strip().lower().replace("_", "-") for n in names if n.strip()}
    return bool(wanted & {dist.lower(), short_name(dist), ep_name.lower().replace("_", "-")})


def check_api_version(spec: str, offered: str = HOOK_API_VERSION) -> bool:
    """Does the plugin's ``LLMCORE_HOOK_API`` spec (``"1"``, ``">=1,<2"``) admit ``offered``?"""
    major = int(offered.split(".")[0])
    spec = spec.strip()
    if re.fullmatch(r"\d+(\.\d+)?", spec):
        return int(spec.split(".")[0]) == major
    version = tuple(int(p) for p in offered.split("."))
    for clause in spec.split(","):
        m = re.fullmatch(r"\s*(>=|<=|==|!=|>|<)\s*(\d+(?:\.\d+)*)\s*", clause)
        if not m:
            raise ValueError(f"cannot read hook API spec {spec!r}")
        op, raw = m.groups()
        other = tuple(int(p) for p in raw.split("."))
        width = max(len(version), len(other))
        a = version + (0,) * (width - len(version))
        b = other + (0,) * (width - len(other))
        ok = {">=": a >= b, "<=": a <= b, "==": a == b, "!=": a != b, ">": a > b, "<": a < b}[op]
        if not ok:
            return False
    return True


def hook_names() -> list[str]:
    """Every hook name a plugin may implement."""
    return sorted(
        n for n in dir(hookspecs) if n.startswith(PROJECT + "_") and callable(getattr(hookspecs, n))
    )


def hook_suggestion(exc: BaseException) -> str:
    """``; did you mean llmcore_generate?`` for pluggy's "unknown hook" error."""
    m = re.search(r"unknown hook '([^']+)'", str(exc))
    if not m:
        return ""
    import difflib

    close = difflib.get_close_matches(m.group(1), hook_names(), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else f"; hooks are: {', '.join(hook_names())}"


def entry_points() -> list[md.EntryPoint]:
    """The ``llmcore`` entry points, each once, sorted by name (the registration order)."""
    eps = md.entry_points(group=ENTRY_POINT_GROUP)
    seen: set[tuple[str, str]] = set()
    out = []
    for ep in eps:
        key = (ep.name, ep.value)
        if key not in seen:  # the same dist on sys.path twice shows up twice
            seen.add(key)
            out.append(ep)
    return sorted(out, key=lambda e: e.name)


def installed_distributions() -> list[tuple[str, str]]:
    """(name, version) of every distribution offering an ``llmcore`` entry point; no import."""
    seen: dict[str, str] = {}
    for ep in entry_points():
        if ep.dist is not None:
            seen.setdefault(ep.dist.name, ep.dist.version)
    return sorted(seen.items())


def _check_declared_api(module: Any, dist: str) -> None:
    spec = getattr(module, "LLMCORE_HOOK_API", None)
    if spec is None:
        return
    if not check_api_version(str(spec)):
        raise PluginError(
            f"{dist} needs llmcore hook API {spec}, but this llmcore offers {HOOK_API_VERSION}",
            hint=f"install a version of {dist} made for hook API {HOOK_API_VERSION}, "
            "or a matching llmcore",
        )


def new_hook_manager() -> pluggy.PluginManager:
    """A pluggy manager that knows llmcore's hook specifications and nothing else."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def load_entry_points(pm: pluggy.PluginManager, disabled: Iterable[str]) -> list[PluginRecord]:
    """Import and register every entry-point plugin not disabled; one record each."""
    is_strict = strict()
    disabled = list(disabled)
    only_raw = os.environ.get(ONLY_ENV)
    only = None if only_raw is None else [n for n in only_raw.split(",") if n.strip()]
    records: list[PluginRecord] = []
    for ep in entry_points():
        dist = ep.dist.name if ep.dist else ep.name
        version = ep.dist.version if ep.dist else None
        record = PluginRecord(
            name=dist, version=version, status="loaded", entry_point=ep.name, module=ep.value
        )
        records.append(record)
        if only is not None and not matches(only, dist, ep.name):
            record.status, record.disabled_by = "disabled", ONLY_ENV
            continue
        if matches(disabled, dist, ep.name):
            record.status, record.disabled_by = "disabled", "plugins.disabled"
            continue
        module: Any = None
        try:
            module = ep.load()
            _check_declared_api(module, dist)
            pm.register(module, name=dist)
            pm.check_pending()
        except Exception as exc:
            if module is not None and pm.is_registered(module):
                pm.unregister(module)
            record.status = "failed"
            record.error = f"{type(exc).__name__}: {exc}{hook_suggestion(exc)}"
            if is_strict:
                raise PluginError(
                    f"plugin {dist} failed to load: {record.error}",
                    hint="unset LLMCORE_STRICT_PLUGINS to keep going without it",
                ) from exc
            continue
        record.hooks = sorted(h.name for h in pm.get_hookcallers(module) or [])
    return records


def config_sections(disabled: Iterable[str] = ()) -> dict[str, type]:
    """Section name → attrs class, from every enabled plugin's ``llmcore_config_sections``.

    The first plugin (by entry-point name) to declare a name keeps it; a plugin whose hook
    raises is left out (``LLMCORE_STRICT_PLUGINS=1``: the error propagates).
    """
    pm = new_hook_manager()
    load_entry_points(pm, disabled)
    out: dict[str, type] = {}
    for impl in reversed(pm.hook.llmcore_config_sections.get_hookimpls()):
        try:
            offered: Any = impl.function()
        except Exception:
            if strict():
                raise
            continue  # `llmcore plugins` shows the failure; the config must still load
        for item in offered or []:
            if isinstance(item, tuple) and len(item) == 2 and attrs.has(item[1]):
                out.setdefault(str(item[0]), item[1])
    return out
