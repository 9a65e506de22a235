"""The plugin manager: the core's own types plus every installed plugin, and its report.

Plugins come from the ``llmcore`` entry-point group (found and loaded by
``plugin_loading``). Each is loaded on its own: one that fails to import or to register is
recorded with its error and the others keep working (``LLMCORE_STRICT_PLUGINS=1`` raises
instead). ``LLMCORE_PLUGINS=a,b`` loads only those, and plugins disabled in config are
never imported.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from .errors import PluginError
from .plugin_loading import (
    CORE_DISTRIBUTION,
    ENTRY_POINT_GROUP,
    ONLY_ENV,
    STRICT_ENV,
    PluginRecord,
    check_api_version,
    hook_names,
    hook_suggestion,
    installed_distributions,
    load_entry_points,
    matches,
    new_hook_manager,
    short_name,
    strict,
)

if TYPE_CHECKING:
    from .hooks import Hooks

# Re-exported: these lived here before plugin_loading held them, and callers import them here.
__all__ = [
    "BUILTIN",
    "CORE_DISTRIBUTION",
    "ENTRY_POINT_GROUP",
    "ONLY_ENV",
    "STRICT_ENV",
    "PluginManager",
    "PluginRecord",
    "TypeConflict",
    "check_api_version",
    "hook_names",
    "installed_distributions",
    "short_name",
]


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


class PluginManager:
    """A pluggy manager plus the record of every plugin it found."""

    def __init__(self, *, disabled: Iterable[str] = (), load_entry_points: bool = True) -> None:
        self.pm = new_hook_manager()
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
        self.records.extend(load_entry_points(self.pm, self._disabled))

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
            raise PluginError(f"{exc}{hook_suggestion(exc)}") from exc
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
        is_strict = strict()
        out: list[tuple[str, Any]] = []
        caller = getattr(self.pm.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            try:
                offered = impl.function()
            except Exception as exc:
                self.mark_failed(impl.plugin_name, exc)
                if is_strict:
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
            if record.status == "disabled" and matches(
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
