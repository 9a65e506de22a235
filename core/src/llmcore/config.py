"""``llmcore.yaml``: attrs classes, cattrs structuring, and errors that name the key and line.

Lookup order: ``--config PATH``, ``$LLMCORE_CONFIG``, ``./llmcore.yaml``, the user config
directory. With no file, every installed plugin runs with its defaults.
"""

from __future__ import annotations

import difflib
import functools
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin

import attrs

from .errors import ConfigError
from .secrets import register_secret

if TYPE_CHECKING:
    import cattrs
    import yaml

CONFIG_ENV = "LLMCORE_CONFIG"
FILE_NAME = "llmcore.yaml"
#: A config file is settings, not data: anything bigger is refused before it is parsed.
MAX_CONFIG_BYTES = 1024 * 1024
#: How many values a config may hold once YAML aliases (``*name``) are expanded; a few
#: lines of nested aliases can otherwise expand to billions (the "alias bomb").
MAX_CONFIG_VALUES = 100_000
STRATEGIES = (
    "priority",
    "round_robin",
    "cost",
    "latency",
    "least_busy",
    "api_first",
    "cli_first",
    "cost_based",
)
PREFER = ("api", "cli", "auto")
AGENT_MODES = ("read_only", "suggest", "auto_edit", "full_auto")
#: Other names of the modes, accepted wherever a mode is read: the seed's approval names
#: (Codex's ``suggest`` / ``auto-edit`` / ``full-auto``) and dashed spellings.
AGENT_MODE_ALIASES = {
    "read-only": "read_only",
    "readonly": "read_only",
    "auto-edit": "auto_edit",
    "autoedit": "auto_edit",
    "full-auto": "full_auto",
    "fullauto": "full_auto",
}
ISOLATION = ("none", "worktree")


def normalize_mode(mode: str) -> str:
    """llmcore's name for ``mode`` (``"full-auto"`` → ``"full_auto"``); unknown names are
    returned as given, for the plugin to refuse with its list of modes."""
    key = mode.strip().lower() if isinstance(mode, str) else mode
    return AGENT_MODE_ALIASES.get(key, key)


@attrs.define
class Timeouts:
    """Deadlines in seconds. A single number N in YAML sets read, first_token, write and
    pool to N, connect to min(N, 5) and total to max(N, 600).

    The defaults make a hung server (one that accepts and never answers, or goes silent)
    fail over within ~30 s rather than minutes; raise ``first_token`` (or ``read``) for a
    local server that takes long to load a model or to write a whole non-streamed answer.
    """

    #: Opening the TCP (and TLS) connection.
    connect: float = 5.0
    #: The longest silence once the answer has started arriving.
    read: float = 30.0
    #: Sending the request.
    write: float = 30.0
    #: Waiting for a free pooled connection.
    pool: float = 10.0
    #: Waiting for the first byte of the answer (for a stream: its first chunk);
    #: unset, the same as ``read``.
    first_token: float | None = None
    #: The whole call, a trickling or endless stream included.
    total: float = 600.0


@attrs.define
class Limits:
    """What a provider's server may send (bytes); past a limit the call fails cleanly."""

    #: The whole answer, counted after decompression (a gzip bomb stops here too).
    max_response_bytes: int = 32 * 1024 * 1024
    #: One line of a stream (one SSE event or NDJSON object).
    max_line_bytes: int = 1024 * 1024
    #: The longest Retry-After honoured, in seconds; larger, endless or NaN values clamp
    #: to it.
    retry_after_cap: float = 3600.0


@attrs.define
class RetryConfig:
    max_attempts: int = 2
    wait: str = "exponential"  # fixed | exponential
    delay: float = 0.25
    max_delay: float = 8.0
    jitter: float = 0.1
    max_retry_after: float = 30.0


@attrs.define
class CostConfig:
    """Prices in USD per million tokens; overrides the model registry for this provider."""

    input_per_million: float = 0.0
    output_per_million: float = 0.0


@attrs.define
class BudgetConfig:
    """Spending limits in USD, counted from the metrics database (``None`` = no limit)."""

    daily_usd: float | None = None  # USD per local calendar day
    monthly_usd: float | None = None  # USD per calendar month


@attrs.define
class GlobalBudgetConfig(BudgetConfig):
    """What every provider together may spend (``routing.budget``); when it is spent, every
    request fails with ``BudgetExceeded`` until the period resets."""

    daily_usd: float | None = None  # USD per local calendar day, all providers together
    monthly_usd: float | None = None  # USD per calendar month, all providers together


@attrs.define
class ProviderConfig:
    name: str = ""
    plugin: str = ""
    enabled: bool = True
    priority: int = 100
    base_url: str | None = None
    base_urls: list[str] | None = None
    api_key: str | None = attrs.field(default=None, repr=False)
    api_key_env: str | None = None
    models: list[str] = attrs.field(factory=list)
    fallback_models: list[str] = attrs.field(factory=list)
    largest_first: bool = False
    timeout: Timeouts = attrs.field(factory=Timeouts)
    limits: Limits = attrs.field(factory=Limits)
    retry: RetryConfig = attrs.field(factory=RetryConfig)
    cost: CostConfig | None = None
    #: Spending limits; over one, the provider is skipped until the period resets.
    budget: BudgetConfig | None = None
    options: dict[str, Any] = attrs.field(factory=dict, repr=lambda o: _options_repr(o))

    def resolved_api_key(self) -> str | None:
        """The key from ``api_key_env`` (preferred) or the literal ``api_key``; never logged."""
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        key = key or self.api_key
        register_secret(key)
        return key


@attrs.define
class AgentConfig:
    name: str = ""
    plugin: str = ""
    enabled: bool = True
    priority: int = 100
    command: str | None = None
    args: list[str] = attrs.field(factory=list)
    env: dict[str, str] = attrs.field(factory=dict, repr=lambda e: _options_repr(e))
    inherit_env: bool = False
    timeout: float = 600.0
    mode: str = "suggest"
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    isolation: str = "none"
    serve_prompts: bool = False
    #: Capability tags (``code``, ``vision``…) ``require=`` matches; empty: the registry's.
    capabilities: list[str] = attrs.field(factory=list)
    #: Runs cost nothing (a free plan): the ``cost`` strategy ranks it with local servers.
    free_tier: bool = False
    #: Agents ``run_agent`` tries next when this one is missing, refuses the key, is rate
    #: limited or cannot reach its endpoint (never after it changed files in place).
    fallback: list[str] = attrs.field(factory=list)
    #: Point the agent's own endpoint settings at a local ``llmcore serve`` (started, or
    #: reused when one answers at serve.host:serve.port), so its turns are routed.
    via_gateway: bool = False
    options: dict[str, Any] = attrs.field(factory=dict, repr=lambda o: _options_repr(o))
    #: Agent logs older than this many days are removed (0: never by age).
    logs_keep_days: float = 14.0
    #: Agent logs, all together, are kept under this many MiB, oldest removed first (0: no cap).
    logs_max_mb: float = 1024.0


@attrs.define
class CooldownConfig:
    rate_limit_seconds: float = 600.0
    failure_threshold: int = 3
    failure_seconds: float = 30.0
    #: What a 429 cools down: ``model`` (that model on that provider) or ``provider``.
    rate_limit_scope: str = "model"


@attrs.define
class RoutingConfig:
    strategy: str = "priority"
    prefer: str = "auto"
    fallback: bool = True
    state: str = "file"  # file | file:PATH | memory | redis://…
    cooldown: CooldownConfig = attrs.field(factory=CooldownConfig)
    #: The longest any cooldown lasts (seconds), whatever a server's Retry-After says.
    max_cooldown: float = 86400.0
    latency_decay: float = 0.3
    #: A limit on what every provider together may spend.
    budget: GlobalBudgetConfig | None = None


@attrs.define
class MetricsConfig:
    enabled: bool = True
    sinks: list[str] = attrs.field(factory=lambda: ["sqlite"])
    options: dict[str, dict[str, Any]] = attrs.field(factory=dict)


@attrs.define
class RegistryConfig:
    path: str | None = None
    ttl_seconds: float = 86400.0


@attrs.define
class LogsConfig:
    """Prompt/response logs (``llmcore logs``): off unless ``enabled`` (or ``--log``)."""

    enabled: bool = False  # log every chat (per call: --log/--no-log, log=)
    path: str | None = None  # default: logs.db in the user data dir
    #: Entries older than this many days are deleted (``None`` keeps them).
    max_age_days: float | None = None
    #: The stored text is pruned, oldest first, to stay under this many megabytes.
    max_size_mb: float | None = None


@attrs.define
class ServeKeyConfig:
    """One client key of ``llmcore serve``: where its secret comes from and what it may do."""

    #: Environment variable holding the key (read when the gateway starts).
    key_env: str | None = None
    #: Or the key's sha256 as 64 hex digits (``printf %s KEY | sha256sum``): no secret on disk.
    sha256: str | None = None
    #: Model names (routes or ``provider/model``) this key may ask for; empty: every one.
    models: list[str] = attrs.field(factory=list)
    #: Requests per minute, shared by every worker; none: unlimited.
    rpm: int | None = None
    #: US dollars per day (UTC), from the metrics db; none: unlimited.
    daily_usd: float | None = None


@attrs.define
class ServeConfig:
    """``llmcore serve``: the OpenAI-, Anthropic- and Responses-compatible gateway."""

    #: Address to listen on; a non-loopback one needs ``keys`` or ``allow_unauthenticated``.
    host: str = "127.0.0.1"
    #: TCP port (``0`` picks a free one and prints it).
    port: int = 4000
    #: Worker processes sharing the port.
    workers: int = 1
    #: Names clients ask for → the ``provider/model`` chain tried in order.
    models: dict[str, list[str]] = attrs.field(factory=dict)
    #: Client keys by name; none configured: no key is asked for (loopback binds only).
    keys: dict[str, ServeKeyConfig] = attrs.field(factory=dict)
    #: Bind a non-loopback address with no keys configured (anyone who reaches it may spend).
    allow_unauthenticated: bool = False
    #: Largest request body accepted, in bytes (images arrive base64-encoded).
    max_body_bytes: int = 32 * 1024 * 1024
    #: Requests one worker serves at once; beyond that: 429 with Retry-After.
    max_concurrency: int = 512
    #: Seconds in-flight requests get to finish at shutdown.
    shutdown_timeout: float = 30.0


@attrs.define
class PluginsConfig:
    disabled: list[str] = attrs.field(factory=list)


@attrs.define
class Config:
    plugins: PluginsConfig = attrs.field(factory=PluginsConfig)
    providers: dict[str, ProviderConfig] | None = None
    agents: dict[str, AgentConfig] | None = None
    routing: RoutingConfig = attrs.field(factory=RoutingConfig)
    metrics: MetricsConfig = attrs.field(factory=MetricsConfig)
    registry: RegistryConfig = attrs.field(factory=RegistryConfig)
    #: Prompt/response logs (``llmcore logs``).
    logs: LogsConfig = attrs.field(factory=LogsConfig)
    #: Top-level sections that plugins declare (``llmcore_config_sections``), structured
    #: into the plugin's attrs class.
    sections: dict[str, Any] = attrs.field(factory=dict)
    #: ``llmcore serve``: the OpenAI-, Anthropic- and Responses-compatible gateway.
    serve: ServeConfig = attrs.field(factory=ServeConfig)
    source: str | None = attrs.field(default=None, eq=False)
    lines: dict[tuple[str, ...], int] = attrs.field(factory=dict, eq=False, repr=False)

    def line_of(self, *path: str) -> int | None:
        for n in range(len(path), 0, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return None

    def error(self, path: tuple[str, ...], message: str, hint: str | None = None) -> ConfigError:
        return ConfigError(
            message, path=_dotted(path), line=self.line_of(*path), file=self.source, hint=hint
        )


# Keys a section holds besides its attrs fields: plugin options (providers, agents) and
# per-sink options (metrics). These go to ``options`` and are checked once plugins load.
_OPEN_SECTIONS = (ProviderConfig, AgentConfig, MetricsConfig)


def find_config(path: str | os.PathLike[str] | None = None) -> Path | None:
    """The config file that applies, or ``None`` when there is none."""
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}", hint="check the --config path")
        return p
    env = os.environ.get(CONFIG_ENV)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise ConfigError(f"{CONFIG_ENV} points to a missing file: {p}")
        return p
    local = Path.cwd() / FILE_NAME
    if local.is_file():
        return local
    user = user_config_path()
    return user if user.is_file() else None


def user_config_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("llmcore")) / FILE_NAME


def load_config(path: str | os.PathLike[str] | None = None, *, cache: bool = False) -> Config:
    """Find, read and validate the configuration (defaults when no file exists).

    With ``cache``, a file already read by this process (same path, size and mtime) is not
    parsed again: the CLI reads the config once for plugin commands and once per command.
    """
    found = find_config(path)
    if found is None:
        return Config()
    try:
        st = found.stat()
        if st.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"the config file is {st.st_size} bytes; at most {MAX_CONFIG_BYTES} are read",
                file=str(found),
                hint="llmcore.yaml holds settings: is this the right file?",
            )
        key = (str(found.resolve()), st.st_size, st.st_mtime_ns)
        if cache and key in _CACHE:
            return _CACHE[key]
        blob = found.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {found}: {exc}") from exc
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = blob[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"not valid UTF-8 (byte {blob[exc.start]:#04x} at offset {exc.start})",
            file=str(found),
            line=line,
            hint="save the file as UTF-8",
        ) from None
    config = parse_config(text, source=str(found))
    if cache:
        _CACHE.clear()
        _CACHE[key] = config
    return config


_CACHE: dict[tuple[str, int, int], Config] = {}


def parse_config(text: str, *, source: str | None = None) -> Config:
    data, lines = _load_yaml(text, source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping of sections", file=source, line=1)
    probe = Config(source=source, lines=lines)
    data = _interpolate(data, (), probe)
    raw_sections = _plugin_section_data(data, probe)
    _check_keys(data, Config, (), probe)
    for section in ("providers", "agents"):
        for name, body in (data.get(section) or {}).items():
            if isinstance(body, dict):
                body.setdefault("name", name)
                body.setdefault("plugin", name)
    import cattrs

    try:
        config = _converter().structure(data, Config)
    except cattrs.BaseValidationError as exc:
        raise _first_error(exc, probe) from None
    config.source = source
    config.lines = lines
    _register_secrets(config)
    config.sections = raw_sections
    _check_values(config)
    return config


def _register_secrets(config: Config) -> None:
    """Keys given through ``options.headers`` (or an agent's ``env``) are secrets too: from
    here on they are redacted from every message, event, sink and repr."""
    from .secrets import register_headers

    for p in (config.providers or {}).values():
        register_headers(p.options.get("headers"))
        register_secret(p.api_key)
    for a in (config.agents or {}).values():
        register_headers(a.options.get("headers"))
        register_headers(a.env)


def _options_repr(options: dict[str, Any]) -> str:
    """``repr`` of a section's options with keys and credential headers hidden."""
    from .secrets import REDACTED, is_credential_header, redact_headers

    shown = {
        k: (REDACTED if is_credential_header(k) else redact_headers(v) if k == "headers" else v)
        for k, v in options.items()
    }
    return repr(shown)


def _plugin_section_data(data: dict[str, Any], probe: Config) -> dict[str, Any]:
    """Take the top-level sections plugins declare out of ``data``, checked and structured.

    Plugins are asked only when the file has a top-level key the core does not know, so a
    plain config never loads a plugin here.
    """
    core = _field_types(Config)
    unknown = [k for k in data if isinstance(k, str) and k not in core]
    if not unknown:
        return {}
    disabled = (data.get("plugins") or {}).get("disabled") or []
    declared = plugin_sections(disabled if isinstance(disabled, list) else [])
    out: dict[str, Any] = {}
    for key in unknown:
        cls = declared.get(key)
        if cls is None:
            raise probe.error(
                (key,),
                "unknown key" + suggest(key, [*core, *declared]),
                hint="a plugin's section works once that plugin is installed"
                if not declared
                else None,
            )
        body = data.pop(key)
        if body is None:
            body = {}
        _check_keys(body, cls, (key,), probe)
        import cattrs

        try:
            out[key] = _converter().structure(body, cls)
        except cattrs.BaseValidationError as exc:
            err = _first_error(exc, probe)
            raise probe.error((key, *(err.path or "").split(".")), err.message) from None
    return out


def plugin_sections(disabled: list[str] | None = None) -> dict[str, type]:
    """Section name → attrs class, from every installed plugin's ``llmcore_config_sections``.

    Only the entry-point plugins are loaded for this (``plugin_loading``), never the core's
    own providers and sinks: those read config, and config must not depend on them.
    """
    from .plugin_loading import config_sections

    return config_sections(disabled or [])


def section(config: Config, name: str, cls: type) -> Any:
    """A plugin's top-level section as its attrs class (defaults when the file has none)."""
    got = config.sections.get(name)
    return got if isinstance(got, cls) else cls()


#: The public name (``llmcore.config_section``).
config_section = section


def _load_yaml(text: str, source: str | None) -> tuple[Any, dict[tuple[str, ...], int]]:
    """Parse once (libyaml's C parser when present) into nodes, check their shape and
    size (alias expansion, complex keys), then build the data from the same nodes."""
    import yaml

    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"the config is {len(text)} characters; at most {MAX_CONFIG_BYTES} are read",
            file=source,
        )
    loader = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
    try:
        node = yaml.compose(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", exc)
        raise ConfigError(f"not valid YAML: {problem}", file=source, line=line) from None
    except RecursionError:
        raise ConfigError("the YAML is nested too deeply", file=source) from None
    lines: dict[tuple[str, ...], int] = {}
    if node is None:
        return None, lines
    count = 0

    def walk(n: yaml.Node, path: tuple[str, ...]) -> None:
        nonlocal count
        count += 1
        if count > MAX_CONFIG_VALUES:
            # An alias's node carries its anchor's line: name the top-level key instead.
            top = path[:1]
            raise ConfigError(
                f"the config expands to more than {MAX_CONFIG_VALUES} values",
                path=_dotted(top),
                file=source,
                line=lines.get(top, n.start_mark.line + 1) if top else None,
                hint="YAML aliases (*name) repeat what an anchor (&name) holds; nested "
                "aliases multiply. Write the values out, or use fewer aliases",
            )
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                if not isinstance(k, yaml.ScalarNode):
                    raise ConfigError(
                        "a key must be a plain name, not a list or a mapping",
                        path=_dotted(path),
                        file=source,
                        line=k.start_mark.line + 1,
                    )
                key = (*path, str(k.value))
                lines[key] = k.start_mark.line + 1
                walk(v, key)
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                key = (*path, str(i))
                lines[key] = v.start_mark.line + 1
                walk(v, key)

    try:
        walk(node, ())
        return yaml.constructor.SafeConstructor().construct_document(node), lines
    except RecursionError:
        raise ConfigError("the YAML is nested too deeply", file=source) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(
            f"not valid YAML: {getattr(exc, 'problem', exc)}",
            file=source,
            line=mark.line + 1 if mark else None,
        ) from None


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _FromEnv(str):
    """A value that came from ``${VAR}``: it is read as the type of the field it fills
    (``true`` for a boolean, ``3`` for a number), as YAML would have read it literally."""

    __slots__ = ()


def _interpolate(value: Any, path: tuple[str, ...], cfg: Config) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, (*path, str(k)), cfg) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*path, str(i)), cfg) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:

        def sub(m: re.Match[str]) -> str:
            var, default = m.group(1), m.group(2)
            got = os.environ.get(var)
            if got is None:
                if default is not None:
                    return default
                raise cfg.error(
                    path, f"environment variable {var} is not set", hint=f"export {var}=…"
                )
            if path and path[-1] in ("api_key", "key", "token"):
                register_secret(got)
            return got

        return _FromEnv(_VAR.sub(sub, value))
    return value


def _field_types(cls: type) -> dict[str, Any]:
    return {
        f.name: f.type for f in attrs.fields(cls) if f.name not in ("source", "lines", "sections")
    }


def _unwrap_optional(tp: Any) -> Any:
    if get_origin(tp) is Union or type(tp).__name__ == "UnionType":
        args = [a for a in get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def _check_keys(data: Any, cls: type, path: tuple[str, ...], cfg: Config) -> None:
    if not isinstance(data, dict):
        raise cfg.error(path, f"expected a mapping, got {_kind(data)}")
    attrs.resolve_types(cls)
    fields = _field_types(cls)
    for key in list(data):
        if not isinstance(key, str):
            raise cfg.error(path, f"keys must be strings, got {key!r}")
        if key not in fields or key == "options":
            if cls in _OPEN_SECTIONS:
                continue
            raise cfg.error((*path, key), "unknown key" + suggest(key, fields))
        tp = _unwrap_optional(fields[key])
        value = data[key]
        if value is None:
            continue
        if get_origin(tp) is list and not isinstance(value, list):
            # A string here would become a list of its letters (sinks: sqlite → s, q, l…).
            raise cfg.error(
                (*path, key),
                f"expected a list, got {_kind(value)} {value!r}",
                hint=f"write it as a list: {key}: [{value}]",
            )
        if attrs.has(tp):
            if cls is ProviderConfig and key == "timeout" and isinstance(value, _FromEnv):
                try:
                    data[key] = value = _env_scalar(value, "a number of seconds")
                except ValueError as exc:
                    raise cfg.error((*path, key), str(exc)) from None
            if cls is ProviderConfig and key == "timeout" and isinstance(value, (int, float)):
                continue
            _check_keys(value, tp, (*path, key), cfg)
        elif get_origin(tp) is dict:
            val_tp = get_args(tp)[1]
            if not isinstance(value, dict):
                raise cfg.error((*path, key), f"expected a mapping, got {_kind(value)}")
            if attrs.has(val_tp):
                for name, body in value.items():
                    if not isinstance(name, str):
                        raise cfg.error(
                            (*path, key),
                            f"the name {name!r} is not a string",
                            hint="YAML reads on/off/yes/no/true/false and bare numbers as "
                            "values: quote the name, e.g. 'off':",
                        )
                    if body is None:
                        value[name] = body = {}
                    _check_keys(body, val_tp, (*path, key, str(name)), cfg)
    if cls in _OPEN_SECTIONS:
        known = set(fields) - {"options"}
        extra = {k: data.pop(k) for k in list(data) if k not in known and k != "options"}
        if extra:
            merged = dict(data.get("options") or {})
            merged.update(extra)
            data["options"] = merged


def suggest(key: str, choices: Any) -> str:
    close = difflib.get_close_matches(key, list(choices), n=1, cutoff=0.6)
    return f", did you mean {close[0]}?" if close else ""


def _kind(v: Any) -> str:
    names: dict[type, str] = {dict: "a mapping", list: "a list", str: "a string"}
    return names.get(type(v), type(v).__name__)


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(path) if path else "(top level)"


@functools.cache
def _converter() -> cattrs.Converter:
    """Built on first use: cattrs costs ~60 ms to import, and most runs read no file."""
    import cattrs

    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)

    def timeouts(value: Any, _: Any) -> Timeouts:
        if isinstance(value, bool):
            raise ValueError("a timeout must be a number of seconds or a mapping")
        if isinstance(value, (int, float)):
            v = float(value)
            return Timeouts(
                connect=min(v, 5.0), read=v, write=v, pool=v, first_token=v, total=max(v, 600.0)
            )
        return conv.structure_attrs_fromdict(value, Timeouts)

    def strict_float(value: Any, _: Any) -> float:
        if isinstance(value, _FromEnv):
            value = _env_scalar(value, "a number")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a number, got {_kind(value)} {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {value!r}")
        return float(value)

    def strict_int(value: Any, _: Any) -> int:
        if isinstance(value, _FromEnv):
            value = _env_scalar(value, "a whole number")
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected a whole number, got {_kind(value)} {value!r}")
        return value

    def strict_bool(value: Any, _: Any) -> bool:
        if isinstance(value, _FromEnv):
            value = _env_scalar(value, "true or false")
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {_kind(value)} {value!r}")
        return value

    def strict_str(value: Any, _: Any) -> str:
        if isinstance(value, (dict, list)):
            raise ValueError(f"expected a string, got {_kind(value)}")
        return str(value)

    conv.register_structure_hook(Timeouts, timeouts)
    conv.register_structure_hook(float, strict_float)
    conv.register_structure_hook(int, strict_int)
    conv.register_structure_hook(bool, strict_bool)
    conv.register_structure_hook(str, strict_str)
    return conv


def _env_scalar(value: str, wanted: str) -> Any:
    """An environment value read as YAML reads a scalar (``true``, ``3``, ``0.5``)."""
    import yaml

    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        parsed = value
    if isinstance(parsed, (dict, list)) or parsed is None:
        raise ValueError(f"expected {wanted} from the environment, got {str(value)!r}")
    return parsed


def _first_error(exc: BaseException, cfg: Config) -> ConfigError:
    import cattrs
    from cattrs.v import format_exception

    def fmt(e: BaseException, tp: Any) -> str:
        if type(e) is ValueError and str(e):
            return str(e)
        return format_exception(e, tp)

    for message in cattrs.transform_error(exc, format_exception=fmt):
        text, _, where = message.rpartition(" @ ")
        path = tuple(p for p in re.split(r"\.|\[|\]", where.lstrip("$")) if p)
        path = tuple(p.strip("'\"") for p in path)
        return cfg.error(path, text or message)
    return ConfigError(str(exc), file=cfg.source)


def _check_values(c: Config) -> None:
    def check(ok: bool, path: tuple[str, ...], message: str, hint: str | None = None) -> None:
        if not ok:
            raise c.error(path, message, hint)

    r = c.routing
    check(
        r.strategy in STRATEGIES,
        ("routing", "strategy"),
        f"unknown strategy {r.strategy!r}{suggest(r.strategy, STRATEGIES)}",
        "one of: " + ", ".join(STRATEGIES),
    )
    check(r.prefer in PREFER, ("routing", "prefer"), f"must be one of {', '.join(PREFER)}")
    from .state import check_spec

    problem = check_spec(r.state)
    check(
        problem is None,
        ("routing", "state"),
        problem or "",
        "use file, file:PATH, memory or redis://HOST:PORT/DB",
    )
    check(r.max_cooldown > 0, ("routing", "max_cooldown"), "must be positive (seconds)")
    check(
        r.cooldown.rate_limit_seconds >= 0,
        ("routing", "cooldown", "rate_limit_seconds"),
        "must not be negative",
    )
    check(
        r.cooldown.failure_threshold >= 1,
        ("routing", "cooldown", "failure_threshold"),
        "must be at least 1",
    )
    check(
        r.cooldown.rate_limit_scope in ("model", "provider"),
        ("routing", "cooldown", "rate_limit_scope"),
        "must be model or provider",
    )
    check(
        0 < r.latency_decay <= 1,
        ("routing", "latency_decay"),
        "must be in (0, 1]: the weight of the newest latency",
    )
    budgets = [(("routing", "budget"), r.budget)] + [
        (("providers", n, "budget"), p.budget) for n, p in (c.providers or {}).items()
    ]
    for path, b in budgets:
        for limit in ("daily_usd", "monthly_usd"):
            v = getattr(b, limit) if b is not None else None
            check(v is None or v >= 0, (*path, limit), "must not be negative")
    for name, p in (c.providers or {}).items():
        base = ("providers", name)
        for i, url in enumerate([p.base_url] if p.base_url else (p.base_urls or [])):
            key = (*base, "base_url") if p.base_url else (*base, "base_urls", str(i))
            check(
                _valid_url(url),
                key,
                f"not a valid http(s) URL: {url!r}",
                "write it like http://127.0.0.1:11434",
            )
        for f in attrs.fields(Timeouts):
            v = getattr(p.timeout, f.name)
            check(
                v is None or v > 0,
                (*base, "timeout"),
                f"timeouts must be positive (got {f.name}={v})",
            )
        check(
            p.limits.max_response_bytes > 0
            and p.limits.max_line_bytes > 0
            and p.limits.retry_after_cap >= 0,
            (*base, "limits"),
            "limits must be positive numbers",
        )
        for f in attrs.fields(Timeouts):
            v = getattr(p.timeout, f.name)
            check(
                not isinstance(v, float) or math.isfinite(v),
                (*base, "timeout"),
                f"timeouts must be a finite number of seconds (got {f.name}={v})",
            )
        check(p.retry.max_attempts >= 1, (*base, "retry", "max_attempts"), "must be at least 1")
        check(
            p.retry.wait in ("fixed", "exponential"),
            (*base, "retry", "wait"),
            "must be fixed or exponential",
        )
        check(
            p.retry.delay >= 0 and p.retry.max_delay >= 0,
            (*base, "retry"),
            "delays must not be negative",
        )
    for name, a in (c.agents or {}).items():
        base = ("agents", name)
        check(a.timeout > 0, (*base, "timeout"), f"must be positive (got {a.timeout})")
        a.mode = AGENT_MODE_ALIASES.get(a.mode.strip().lower(), a.mode)
        check(
            a.logs_keep_days >= 0 and a.logs_max_mb >= 0,
            (*base, "logs_keep_days"),
            "log limits must not be negative (0 turns a limit off)",
        )
        check(
            a.mode in AGENT_MODES,
            (*base, "mode"),
            f"unknown mode {a.mode!r}{suggest(a.mode, AGENT_MODES)}",
            "one of: " + ", ".join(AGENT_MODES),
        )
        check(a.isolation in ISOLATION, (*base, "isolation"), "must be none or worktree")
        for i, other in enumerate(a.fallback):
            check(other != name, (*base, "fallback", str(i)), "an agent cannot fall back to itself")
            if c.agents is not None and other not in c.agents:
                check(
                    False,
                    (*base, "fallback", str(i)),
                    f"no agent named {other!r}{suggest(other, c.agents)}",
                    "name an agent of the agents: section",
                )
        if a.base_url:
            check(_valid_url(a.base_url), (*base, "base_url"), f"not a valid URL: {a.base_url!r}")
    _check_serve(c)


def _check_serve(c: Config) -> None:
    s = c.serve

    def check(ok: bool, path: tuple[str, ...], message: str, hint: str | None = None) -> None:
        if not ok:
            raise c.error(("serve", *path), message, hint)

    check(0 <= s.port <= 65535, ("port",), f"{s.port} is not a TCP port")
    check(1 <= s.workers <= 256, ("workers",), "must be between 1 and 256")
    check(s.max_body_bytes >= 1024, ("max_body_bytes",), "must be at least 1024")
    check(s.max_concurrency >= 1, ("max_concurrency",), "must be at least 1")
    check(s.shutdown_timeout >= 0, ("shutdown_timeout",), "must not be negative")
    for name, chain in s.models.items():
        check(
            bool(chain),
            ("models", name),
            "a route needs at least one provider/model",
            "write it like: fast: [local/llama3.2, cloud/gpt-4o-mini]",
        )
        for i, entry in enumerate(chain):
            check(
                "/" in entry,
                ("models", name, str(i)),
                f"{entry!r} is not provider/model",
                "write it like local/llama3.2",
            )
    for name, k in s.keys.items():
        base = ("keys", name)
        check(
            bool(k.key_env) != bool(k.sha256),
            base,
            "give exactly one of key_env (a variable holding the key) or sha256",
            "e.g. key_env: TEAM_KEY, or sha256: <printf %s KEY | sha256sum>",
        )
        if k.sha256:
            check(
                re.fullmatch(r"[0-9a-fA-F]{64}", k.sha256) is not None,
                (*base, "sha256"),
                "must be 64 hex digits",
                "printf %s KEY | sha256sum",
            )
        check(k.rpm is None or k.rpm >= 1, (*base, "rpm"), "must be at least 1")
        check(k.daily_usd is None or k.daily_usd >= 0, (*base, "daily_usd"), "must not be negative")


def _valid_url(url: str) -> bool:
    return bool(re.match(r"^https?://[^\s/:]+(:\d{1,5})?(/\S*)?$", url or ""))


def check_plugin_options(
    config: Config, section: str, name: str, known_types: Mapping[str, type]
) -> None:
    """Check a provider or agent section against the installed plugin that serves it.

    ``known_types`` maps type names to provider or agent classes. Raises ``ConfigError``
    for an unknown plugin (listing the installed ones) or an unknown option key
    (suggesting the nearest valid one).
    """
    body: Any = config.providers if section == "providers" else config.agents or {}
    entry = (body or {})[name]
    if entry.plugin not in known_types:
        installed = ", ".join(sorted(known_types)) or "none"
        raise config.error(
            (section, name, "plugin"),
            f"unknown plugin {entry.plugin!r}{suggest(entry.plugin, known_types)}",
            hint=f"installed: {installed}; install more with `llmcore install NAME`",
        )
    cls = known_types[entry.plugin]
    options_cls = getattr(cls, "Options", None)
    allowed = {f.name for f in attrs.fields(options_cls)} if options_cls else set()
    core_keys = {f.name for f in attrs.fields(type(entry))} - {"options", "name"}
    for key in entry.options:
        if key not in allowed:
            raise config.error(
                (section, name, key), "unknown key" + suggest(key, allowed | core_keys)
            )
    if options_cls:
        import cattrs

        try:
            _converter().structure(dict(entry.options), options_cls)
        except cattrs.BaseValidationError as exc:
            err = _first_error(exc, config)
            raise config.error((section, name, *(err.path or "").split(".")), err.message) from None


def parse_sink_options(name: str, options_cls: type, options: Mapping[str, Any]) -> Any:
    """Build a sink's ``Options`` from ``metrics.<name>``; unknown or ill-typed keys raise a
    ``ConfigError`` naming the key (and the nearest valid one)."""
    from .errors import ConfigError

    allowed = [f.name for f in attrs.fields(options_cls)]
    if not isinstance(options, Mapping):
        raise ConfigError(
            f"metrics.{name} must be a mapping of options", hint="valid keys: " + ", ".join(allowed)
        )
    for key in options:
        if key not in allowed:
            raise ConfigError(
                f"metrics.{name}.{key}: unknown key{suggest(str(key), allowed)}",
                hint="valid keys: " + ", ".join(allowed),
            )
    try:
        return structure_options(options_cls, options)
    except Exception as exc:
        import cattrs

        if isinstance(exc, cattrs.BaseValidationError):
            lines = cattrs.transform_error(exc)
            raise ConfigError(
                f"metrics.{name}: {lines[0] if lines else exc}",
                hint="valid keys: " + ", ".join(allowed),
            ) from None
        raise


def check_sinks(config: Config, sink_types: Mapping[str, type]) -> None:
    """Every sink named in ``metrics.sinks`` is installed, and every ``metrics.<sink>``
    section names a sink and holds only its options (with the nearest valid key)."""
    mc = config.metrics
    for i, name in enumerate(mc.sinks):
        if name not in sink_types:
            raise config.error(
                ("metrics", "sinks", str(i)),
                f"unknown sink {name!r}{suggest(name, sink_types)}",
                hint="installed: " + ", ".join(sorted(sink_types)),
            )
    for name, options in mc.options.items():
        if name not in sink_types:
            raise config.error(
                ("metrics", name),
                f"unknown key{suggest(name, [*sink_types, 'enabled', 'sinks'])}",
                hint="metrics holds enabled, sinks, and one section per sink: "
                + ", ".join(sorted(sink_types)),
            )
        options_cls = getattr(sink_types[name], "Options", None)
        if options_cls is not None:
            try:
                parse_sink_options(name, options_cls, options or {})
            except ConfigError as exc:
                bad = re.match(r"metrics\.[^.:]+\.([^:]+):", exc.message)
                where = ("metrics", name, bad.group(1)) if bad else ("metrics", name)
                text = exc.message.split(": ", 1)[1] if ": " in exc.message else exc.message
                raise config.error(where, text, exc.hint) from None


def check_api_keys(config: Config, provider_types: Mapping[str, type]) -> None:
    """An enabled provider that needs a key and names ``api_key_env`` must find it set:
    otherwise the request would go out unauthenticated and fail with a 401 far from here.
    Local servers (a loopback URL) need no key."""
    for name, p in (config.providers or {}).items():
        if not p.enabled or not p.api_key_env or p.api_key or os.environ.get(p.api_key_env):
            continue
        cls = provider_types.get(p.plugin)
        urls = [p.base_url] if p.base_url else list(p.base_urls or [])
        url = urls[0] if urls else getattr(cls, "default_base_url", None)
        if getattr(cls, "local", False) or _loopback(url):
            continue
        raise config.error(
            ("providers", name, "api_key_env"),
            f"environment variable {p.api_key_env} is not set",
            hint=f"export {p.api_key_env}=<your key>, or set providers.{name}.enabled: false",
        )


def _loopback(url: str | None) -> bool:
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or "") if url else ""
    return host in ("localhost", "::1") or host.startswith("127.")


def structure_options(cls: type, options: Mapping[str, Any]) -> Any:
    """Build a plugin's ``Options`` attrs instance from the free keys of its section."""
    return _converter().structure(dict(options), cls)


def _plain(value: Any) -> Any:
    """``value`` with every ``${VAR}`` string made a plain ``str`` (for YAML dumping)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, _FromEnv) else value


def redacted_dict(config: Config) -> dict[str, Any]:
    """The configuration as plain data with every literal key replaced (for ``config show``)."""
    data: dict[str, Any] = _plain(
        attrs.asdict(config, filter=lambda a, v: a.name not in ("lines", "source"))
    )
    from .secrets import redact, redact_headers

    data.update(data.pop("sections", {}))

    data["routing"]["state"] = redact(data["routing"]["state"])
    for section in ("providers", "agents"):
        for body in (data.get(section) or {}).values():
            if body.get("api_key"):
                body["api_key"] = "***"
            body["options"] = _redact_options(body.get("options") or {})
            if isinstance(body.get("options", {}).get("headers"), dict):
                body["options"]["headers"] = redact_headers(body["options"]["headers"])
            if isinstance(body.get("env"), dict):
                body["env"] = redact_headers(body["env"])
    return data


_SECRET_NAMES = ("key", "token", "secret", "password", "authorization", "cookie")


def _redact_options(value: Any, secret_name: bool = False) -> Any:
    """Hide option values that are secrets: a text value under a secret-sounding key name
    (``api_token``, ``headers: {Authorization: ...}``), and any text shaped like a key.
    Numbers and flags stay visible whatever the name (``default_max_tokens: 4096``)."""
    from .secrets import redact

    if isinstance(value, dict):
        return {
            k: _redact_options(v, any(s in str(k).lower() for s in _SECRET_NAMES))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact_options(v, secret_name) for v in value]
    if isinstance(value, str):
        return "***" if secret_name and value else redact(value)
    return value
