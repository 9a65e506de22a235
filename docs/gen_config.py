"""Write docs/reference/configuration.md from the attrs classes of llmcore.config.

Every key of ``llmcore.yaml`` comes from the attrs fields (name, type, default), so the page
cannot list a key that does not exist or miss one that does. Descriptions come from the
``#:`` comment above a field or the comment after it in ``config.py``, or from ``NOTES``
below; plugin keys come from each installed plugin's ``Options`` class.

Run ``python docs/gen_config.py``; a test fails when the committed page is out of date.
"""

from __future__ import annotations

import inspect
import io
import sys
import tokenize
import types
import typing
from pathlib import Path
from typing import Any

import attrs
from llmcore import config as cfg

PAGE = Path(__file__).parent / "reference" / "configuration.md"

#: Descriptions for keys whose source has no comment.
NOTES: dict[str, str] = {
    "Config.plugins": "Which installed plugins load.",
    "Config.providers": "HTTP backends by name. Absent: every installed local provider "
    "type with its defaults. Present (even empty): exactly these.",
    "Config.agents": "Coding agents by name. Absent: every installed agent type with its defaults.",
    "Config.routing": "How a request picks its provider, fails over and cools down.",
    "Config.metrics": "Where request and agent-run events are recorded.",
    "Config.registry": "The model capability registry (context sizes, prices).",
    "PluginsConfig.disabled": "Plugins never imported: short names (`aider`), distribution "
    "names or entry-point names.",
    "ProviderConfig.name": "Filled in from the section's key.",
    "ProviderConfig.plugin": "The provider type (`ollama`, `vllm`, `openai`, ...). Default: "
    "the section's key.",
    "ProviderConfig.enabled": "`false` keeps the section but never routes to it.",
    "ProviderConfig.priority": "Lower is tried first (strategy `priority`).",
    "ProviderConfig.base_url": "Where the server is; default: the type's own.",
    "ProviderConfig.base_urls": "Several replicas of one server, used in turn.",
    "ProviderConfig.api_key": "A literal key (prefer `api_key_env`); never shown or logged.",
    "ProviderConfig.api_key_env": "The environment variable holding the key.",
    "ProviderConfig.models": "Models served here; the first is the default. Empty: the "
    "router picks one the server lists (see routing).",
    "ProviderConfig.fallback_models": "Tried in order after `models:` fail (never instead "
    "of a model the request names).",
    "ProviderConfig.largest_first": "Prefer the largest model that fits.",
    "ProviderConfig.timeout": "Seconds; a number, or a mapping of connect/read/write/"
    "pool/first_token/total.",
    "ProviderConfig.limits": "Byte limits on what the server may send.",
    "ProviderConfig.retry": "Retries on this provider before failing over.",
    "ProviderConfig.cost": "Prices; overrides the registry for this provider.",
    "ProviderConfig.options": "Any other key of the section goes to the plugin's options "
    "(see [plugin options](plugin-options.md)).",
    "AgentConfig.name": "Filled in from the section's key.",
    "AgentConfig.plugin": "The agent type (`aider`, `codex`, ...). Default: the section's key.",
    "AgentConfig.enabled": "`false` keeps the section but never runs it.",
    "AgentConfig.priority": "Lower is preferred when several agents could serve.",
    "AgentConfig.command": "The program to run; default: the type's program on `PATH`.",
    "AgentConfig.args": "Extra arguments for every run.",
    "AgentConfig.env": "Extra environment variables for the program.",
    "AgentConfig.inherit_env": "Pass every secret-looking variable of your environment "
    "through (default: only the agent's own).",
    "AgentConfig.timeout": "Seconds before the run's whole process group is stopped.",
    "AgentConfig.mode": "`read_only`, `suggest`, `auto_edit` or `full_auto`.",
    "AgentConfig.model": "The model the agent is told to use.",
    "AgentConfig.base_url": "Point the agent at this OpenAI-compatible endpoint.",
    "AgentConfig.api_key_env": "The environment variable holding that endpoint's key.",
    "AgentConfig.isolation": "`worktree`: run in a fresh git worktree.",
    "AgentConfig.serve_prompts": "Let the router send plain prompts to this agent.",
    "AgentConfig.options": "Any other key of the section goes to the plugin's options.",
    "RetryConfig.max_attempts": "Tries per provider, the first included.",
    "RetryConfig.delay": "Seconds before the first retry.",
    "RetryConfig.max_delay": "Longest wait between retries.",
    "RetryConfig.jitter": "Random share added to each wait.",
    "RetryConfig.max_retry_after": "A longer `Retry-After` fails over instead of waiting.",
    "CooldownConfig.rate_limit_seconds": "Rest after a 429 with no `Retry-After`.",
    "CooldownConfig.failure_threshold": "Consecutive failures that start a cooldown.",
    "CooldownConfig.failure_seconds": "Length of that cooldown.",
    "RoutingConfig.strategy": "`priority`, `round_robin`, `cost` (or `cost_based`), "
    "`latency`, `least_busy`, `api_first` or `cli_first`.",
    "RoutingConfig.prefer": "`api` (API only), `cli` (agents, then API) or `auto` (by the "
    "task: `cwd=`/`edit=True` to agents first).",
    "RoutingConfig.fallback": "Try the next provider when one fails.",
    "RoutingConfig.cooldown": "When a failing provider is rested.",
    "RoutingConfig.latency_decay": "Weight of the newest sample in the latency average.",
    "MetricsConfig.enabled": "Record events at all.",
    "MetricsConfig.sinks": "Sink types that receive events (`sqlite`, `jsonl`, `prometheus`, ...).",
    "MetricsConfig.options": "Per-sink options: `metrics.<sink>: {...}`.",
    "RegistryConfig.path": "A YAML file of your own model entries.",
    "RegistryConfig.ttl_seconds": "How long models reported by providers are trusted.",
    "CostConfig.input_per_million": "USD per million input (prompt) tokens.",
    "CostConfig.output_per_million": "USD per million output (completion) tokens.",
    "Timeouts.connect": "Seconds to open a connection.",
    "Timeouts.read": "Seconds between two received bytes.",
    "Timeouts.write": "Seconds to send the request.",
    "Timeouts.pool": "Seconds to wait for a free pooled connection.",
}

_SKIP = {"source", "lines", "sections"}


def _source_comments(module: types.ModuleType) -> dict[str, str]:
    """``Class.field`` → the ``#:`` comment above it or the ``#`` comment after it."""
    out: dict[str, str] = {}
    src = inspect.getsource(module)
    cls: str | None = None
    pending: list[str] = []
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.NAME and tok.string == "class" and tok.start[1] == 0:
            cls = None
        line = tok.line
        if tok.type == tokenize.COMMENT and tok.string.startswith("#:"):
            pending.append(tok.string[2:].strip())
            continue
        if tok.type == tokenize.NAME and tok.start[1] == 0 and line.startswith("class "):
            cls = line.split()[1].split("(")[0].rstrip(":")
            pending = []
            continue
        if cls and tok.type == tokenize.NAME and tok.start[1] == 4 and ":" in line:
            field = tok.string
            trailing = line.split("#", 1)[1].strip() if "#" in line.split("=", 1)[-1] else ""
            text = " ".join(pending) or trailing
            if text:
                out.setdefault(f"{cls}.{field}", text)
            pending = []
        elif tok.type == tokenize.NEWLINE:
            pending = [] if not line.strip().startswith("#:") else pending
    return out


def _type_name(tp: Any) -> str:
    if isinstance(tp, str):
        return tp
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        parts = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (", optional" if type(None) in args else "")
    if origin is list:
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping of {_type_name(args[1])}" if args else "mapping"
    if attrs.has(tp):
        return "section"
    return {str: "string", int: "integer", float: "number", bool: "true/false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _default(field: attrs.Attribute) -> str:  # type: ignore[type-arg]
    d = field.default
    if isinstance(d, attrs.Factory):  # type: ignore[arg-type]
        value = d.factory()  # type: ignore[attr-defined]
        if attrs.has(type(value)):
            return "(see below)"
        d = value
    if d is None:
        return "none"
    if isinstance(d, bool):
        return "true" if d else "false"
    if isinstance(d, str):
        return f'"{d}"' if d else '""'
    return (
        repr(d)
        if not isinstance(d, (list, dict))
        else (repr(d) if d else ("[]" if isinstance(d, list) else "{}"))
    )


def _section(
    cls: type, path: str, comments: dict[str, str], out: list[str], seen: set[type]
) -> None:
    try:
        attrs.resolve_types(cls)
    except (NameError, TypeError):
        pass  # a plugin's Options with unresolvable hints: their text is shown as written
    doc = inspect.getdoc(cls) or ""
    out += [f"### `{path}`" if path else "### Top level", ""]
    if doc and cls.__module__ == cfg.__name__ and not doc.startswith(cls.__name__ + "("):
        out += [doc, ""]
    out += ["| key | type | default | meaning |", "|---|---|---|---|"]
    nested: list[tuple[type, str]] = []
    for f in attrs.fields(cls):
        if f.name in _SKIP:
            continue
        key = f"{cls.__name__}.{f.name}"
        text = comments.get(key) or NOTES.get(key) or ""
        tp = f.type
        inner = _unwrap(tp)
        cell = text.replace("|", "\\|")
        out.append(f"| `{f.name}` | {_type_name(tp)} | `{_default(f)}` | {cell} |")
        if attrs.has(inner) and inner not in seen:
            nested.append((inner, f"{path}.{f.name}".lstrip(".")))
        elif typing.get_origin(inner) is dict and attrs.has(typing.get_args(inner)[1]):
            val = typing.get_args(inner)[1]
            if val not in seen:
                nested.append((val, f"{path}.{f.name}.NAME".lstrip(".")))
    out.append("")
    for sub, sub_path in nested:
        seen.add(sub)
        _section(sub, sub_path, comments, out, seen)


def _unwrap(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def render_plugin_options() -> str:
    """The keys each installed provider and agent type adds to its section.

    Rendered when the site is built (docs/mkdocs_hooks.py), not committed: plugins change
    their options on their own schedule, and the page must show what is installed.
    """
    from llmcore.plugins import PluginManager
    from llmcore.runtime import Runtime

    rt = Runtime(cfg.Config(), PluginManager())
    out = [
        "# Plugin options",
        "",
        "<!-- generated at build time by docs/gen_config.py from each plugin's Options -->",
        "",
        "Keys a provider or agent type adds to its section of `llmcore.yaml` (its `Options` "
        "class), next to the [core keys](configuration.md). Generated from the plugins "
        "installed when the site was built.",
        "",
    ]
    for kind, types_ in (("providers", rt.provider_types), ("agents", rt.agent_types)):
        for name in sorted(types_):
            opts = getattr(types_[name], "Options", None)
            if not opts or not attrs.has(opts):
                continue
            comments = _source_comments(sys.modules[opts.__module__])
            _section(opts, f"{kind}.NAME` with `plugin: {name}", comments, out, set())
    return "\n".join(out).rstrip() + "\n"


def render() -> str:
    comments = _source_comments(cfg)
    out = [
        "# Configuration reference",
        "",
        "<!-- generated by docs/gen_config.py from llmcore/config.py; do not edit -->",
        "",
        inspect.cleandoc(cfg.__doc__ or ""),
        "",
        "Every section is optional. `${VAR}` and `${VAR:-default}` in a value are read from "
        "the environment, as the type of the key they fill (`${ON}` set to `false` for a "
        "boolean, `${N}` set to `3` for a number). An unknown key is an error that names "
        "its path and line and suggests the nearest valid key (`llmcore config validate` "
        "exits 2, never with a traceback). Core keys, types and ranges (finite, positive "
        "timeouts and cooldowns; lists are lists) are checked when the file is read; "
        "plugin types, the keys a plugin adds, metrics sinks and their options, and an "
        "`api_key_env` naming an unset variable for a provider that needs a key (local "
        "servers do not) are checked when the `Client` is built or by "
        "`llmcore config validate`, never at the first request. The file is parsed once "
        "per run (with libyaml when installed); a file over 1 MiB, or one whose YAML "
        "aliases expand to more than 100000 values, is refused with a clear message.",
        "",
        "## Core keys",
        "",
    ]
    _section(cfg.Config, "", comments, out, {cfg.Config})
    out += [
        "Each plugin adds keys of its own to its sections: see "
        "[plugin options](plugin-options.md).",
        "",
    ]
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {PAGE}\n")
