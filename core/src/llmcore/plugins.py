"""Finding, loading and reporting plugins.

Plugins come from the ``llmcore`` entry-point group. Each is loaded on its own: one that
fails to import or to register is recorded with its error and the others keep working
(``LLMCORE_STRICT_PLUGINS=1`` raises instead). ``LLMCORE_PLUGINS=a,b`` loads only those,
and plugins disabled in config are never imported.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import sys
import traceback
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from . import hookspecs
from .errors import PluginError
from .hookspecs import HOOK_API_VERSION, PROJECT

if TYPE_CHECKING:
    from .hooks import Hooks

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


#: The registration name of the core's own types (the ``openai`` provider, the sinks).
BUILTIN = "llmcore.builtin"


@attrs.define
class TypeConflict:
    """Two plugins offer the same provider, agent or sink type name.

    Which one wins is fixed: the core's own types (``openai``) win over any plugin's; between
    plugins, the one registered first, and plugins are registered in the order of their
    entry-point names (``a`` before ``b``). The loser's class is never used.
    """

    kind: str  # provider | agent | sink
    type_name: str
    winner: str
    loser: str

    def message(self) -> str:
        return (
            f"{self.kind} type {self.type_name!r} is offered by both {_shown(self.winner)} "
            f"and {_shown(self.loser)}; {_shown(self.winner)} wins"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "message": self.message()}


def _shown(plugin: str) -> str:
    return "llmcore itself" if plugin == BUILTIN else plugin


def short_name(dist_name: str) -> str:
    """``llmcore-plugin-claude-code`` → ``claude-code``."""
    return re.sub(r"^llmcore[-_]plugin[-_]", "", dist_name.lower()).replace("_", "-")


def _matches(names: Iterable[str], dist: str, ep_name: str) -> bool:
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


class PluginManager:
    """A pluggy manager plus the record of every plugin it found."""

    def __init__(self, *, disabled: Iterable[str] = (), load_entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.records: list[PluginRecord] = []
        self.conflicts: list[TypeConflict] = []
        self._disabled = list(disabled)
        self._hooks: Hooks | None = None
        from .hooks import CoreHooks

        self.pm.register(CoreHooks(), name="llmcore.core")
        from .builtin import BuiltinPlugin

        self.pm.register(BuiltinPlugin(), name=BUILTIN)
        if load_entry_points:
            self.load_entry_points()

    @property
    def hooks(self) -> Hooks:
        """The typed façade: one method per hook (the only way llmcore calls them)."""
        if self._hooks is None:
            from .hooks import Hooks

            self._hooks = Hooks(self)
        return self._hooks

    def load_entry_points(self) -> None:
        strict = os.environ.get(STRICT_ENV, "") not in ("", "0", "false")
        only_raw = os.environ.get(ONLY_ENV)
        only = None if only_raw is None else [n for n in only_raw.split(",") if n.strip()]
        for ep in _entry_points():
            dist = ep.dist.name if ep.dist else ep.name
            version = ep.dist.version if ep.dist else None
            record = PluginRecord(
                name=dist, version=version, status="loaded", entry_point=ep.name, module=ep.value
            )
            self.records.append(record)
            if only is not None and not _matches(only, dist, ep.name):
                record.status, record.disabled_by = "disabled", ONLY_ENV
                continue
            if _matches(self._disabled, dist, ep.name):
                record.status, record.disabled_by = "disabled", "plugins.disabled"
                continue
            module: Any = None
            try:
                module = ep.load()
                _check_declared_api(module, dist)
                self.pm.register(module, name=dist)
                self.pm.check_pending()
            except Exception as exc:
                if module is not None and self.pm.is_registered(module):
                    self.pm.unregister(module)
                record.status = "failed"
                record.error = f"{type(exc).__name__}: {exc}{_hook_suggestion(exc)}"
                if strict:
                    raise PluginError(
                        f"plugin {dist} failed to load: {record.error}",
                        hint="unset LLMCORE_STRICT_PLUGINS to keep going without it",
                    ) from exc
                continue
            record.hooks = sorted(h.name for h in self.pm.get_hookcallers(module) or [])

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register an in-process plugin object (tests, embedding applications)."""
        if self.pm.is_registered(plugin):
            shown = name or getattr(plugin, "__name__", None) or repr(plugin)
            raise PluginError(
                f"plugin {shown!r} is already registered with this plugin manager",
                hint="register each plugin module or object once (a module that is also "
                "installed through its entry point is already loaded)",
            )
        self.pm.register(plugin, name=name)
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(plugin)
            raise PluginError(f"{exc}{_hook_suggestion(exc)}") from exc
        self.records.append(
            PluginRecord(
                name=name or repr(plugin),
                version=None,
                status="loaded",
                hooks=sorted(h.name for h in self.pm.get_hookcallers(plugin) or []),
            )
        )

    def call_discovery(self, hook_name: str) -> list[tuple[str, Any]]:
        """Call a discovery hook plugin by plugin, keeping each failure with its plugin.

        Returns ``(plugin_name, offered_class)`` pairs. A plugin that raises is marked
        failed and skipped; the rest are still asked.
        """
        strict = os.environ.get(STRICT_ENV, "") not in ("", "0", "false")
        out: list[tuple[str, Any]] = []
        caller = getattr(self.pm.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            try:
                offered = impl.function()
            except Exception as exc:
                self.mark_failed(impl.plugin_name, exc)
                if strict:
                    raise
                continue
            for cls in offered or []:
                out.append((impl.plugin_name, cls))
        return out

    def call_facts(self) -> list[tuple[str, Any]]:
        """``(plugin_name, mapping)`` from every ``llmcore_register_model_facts``, in
        precedence order (the core first, then by entry-point name); a plugin that raises
        is marked failed."""
        out: list[tuple[str, Any]] = []
        for impl in self.pm.hook.llmcore_register_model_facts.get_hookimpls():
            try:
                doc = impl.function()
            except Exception as exc:
                self.mark_failed(impl.plugin_name, exc)
                continue
            if doc:
                out.append((impl.plugin_name, doc))
        return sorted(out, key=lambda item: self.rank(item[0]))

    def record_conflict(self, kind: str, type_name: str, winner: str, loser: str) -> None:
        """Note that ``loser`` offers a ``kind`` type ``winner`` already offers."""
        conflict = TypeConflict(kind, type_name, winner, loser)
        if conflict in self.conflicts:
            return
        self.conflicts.append(conflict)
        for record in self.records:
            if record.name in (winner, loser):
                record.conflicts.append(conflict.message())

    def rank(self, plugin_name: str) -> int:
        """Precedence when two plugins offer one type name (lower wins): the core first,
        then plugins in registration order (entry points sorted by name)."""
        if plugin_name in (BUILTIN, "llmcore.core"):
            return -1
        names = [r.name for r in self.records]
        return names.index(plugin_name) if plugin_name in names else len(names)

    def disabled_record(self, type_name: str) -> PluginRecord | None:
        """The disabled plugin that would offer ``type_name``, judged by its names (a
        disabled plugin is never imported, so the types it offers are not known)."""
        for record in self.records:
            if record.status == "disabled" and _matches(
                [type_name], record.name, record.entry_point or ""
            ):
                return record
        return None

    def mark_failed(self, plugin_name: str, exc: BaseException) -> None:
        for record in self.records:
            if record.name == plugin_name:
                record.status = "failed"
                record.error = f"{type(exc).__name__}: {exc}"
        if os.environ.get("LLMCORE_DEBUG"):
            traceback.print_exception(exc, file=sys.stderr)


def hook_names() -> list[str]:
    """Every hook name a plugin may implement."""
    return sorted(
        n for n in dir(hookspecs) if n.startswith(PROJECT + "_") and callable(getattr(hookspecs, n))
    )


def _hook_suggestion(exc: BaseException) -> str:
    """``; did you mean llmcore_generate?`` for pluggy's "unknown hook" error."""
    m = re.search(r"unknown hook '([^']+)'", str(exc))
    if not m:
        return ""
    import difflib

    close = difflib.get_close_matches(m.group(1), hook_names(), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else f"; hooks are: {', '.join(hook_names())}"


def installed_distributions() -> list[tuple[str, str]]:
    """(name, version) of every distribution offering an ``llmcore`` entry point; no import."""
    seen: dict[str, str] = {}
    for ep in _entry_points():
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


def _entry_points() -> list[md.EntryPoint]:
    eps = md.entry_points(group=ENTRY_POINT_GROUP)
    seen: set[tuple[str, str]] = set()
    out = []
    for ep in eps:
        key = (ep.name, ep.value)
        if key not in seen:  # the same dist on sys.path twice shows up twice
            seen.add(key)
            out.append(ep)
    return sorted(out, key=lambda e: e.name)
