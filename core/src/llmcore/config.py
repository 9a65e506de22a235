"""``llmcore.yaml``: attrs classes, cattrs structuring, and errors that name the key and line.

Lookup order: ``--config PATH``, ``$LLMCORE_CONFIG``, ``./llmcore.yaml``, the user config
directory. With no file, every installed plugin runs with its defaults.
"""

from __future__ import annotations

import difflib
import functools
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
STRATEGIES = ("priority", "round_robin", "cost", "latency", "least_busy")
PREFER = ("api", "cli", "auto")
AGENT_MODES = ("read_only", "suggest", "auto_edit", "full_auto")
ISOLATION = ("none", "worktree")


@attrs.define
class Timeouts:
    """Granular timeouts in seconds. A single number in YAML sets all four."""

    connect: float = 5.0
    read: float = 120.0
    write: float = 30.0
    pool: float = 10.0


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
    retry: RetryConfig = attrs.field(factory=RetryConfig)
    cost: CostConfig | None = None
    options: dict[str, Any] = attrs.field(factory=dict)

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
    env: dict[str, str] = attrs.field(factory=dict)
    inherit_env: bool = False
    timeout: float = 600.0
    mode: str = "suggest"
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    isolation: str = "none"
    serve_prompts: bool = False
    #: Point the agent's own endpoint settings at a local ``llmcore serve`` (started, or
    #: reused when one answers at serve.host:serve.port), so its turns are routed.
    via_gateway: bool = False
    options: dict[str, Any] = attrs.field(factory=dict)


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
    latency_decay: float = 0.3


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


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Find, read and validate the configuration (defaults when no file exists)."""
    found = find_config(path)
    if found is None:
        return Config()
    try:
        text = found.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {found}: {exc}") from exc
    return parse_config(text, source=str(found))


def parse_config(text: str, *, source: str | None = None) -> Config:
    data, lines = _load_yaml(text, source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping of sections", file=source, line=1)
    probe = Config(source=source, lines=lines)
    data = _interpolate(data, (), probe)
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
    _check_values(config)
    return config


def _load_yaml(text: str, source: str | None) -> tuple[Any, dict[tuple[str, ...], int]]:
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", exc)
        raise ConfigError(f"not valid YAML: {problem}", file=source, line=line) from None
    lines: dict[tuple[str, ...], int] = {}
    if node is None:
        return None, lines

    def walk(n: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = (*path, str(k.value))
                lines[key] = k.start_mark.line + 1
                walk(v, key)
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                key = (*path, str(i))
                lines[key] = v.start_mark.line + 1
                walk(v, key)

    walk(node, ())
    loader = yaml.SafeLoader(text)
    try:
        return loader.get_single_data(), lines
    finally:
        loader.dispose()


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


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

        return _VAR.sub(sub, value)
    return value


def _field_types(cls: type) -> dict[str, Any]:
    return {f.name: f.type for f in attrs.fields(cls) if f.name not in ("source", "lines")}


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
        if attrs.has(tp):
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
                            (*path, key), f"the name {name!r} is not a string",
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
            return Timeouts(connect=min(v, 5.0), read=v, write=v, pool=v)
        return conv.structure_attrs_fromdict(value, Timeouts)

    def strict_float(value: Any, _: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a number, got {_kind(value)} {value!r}")
        return float(value)

    def strict_int(value: Any, _: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected a whole number, got {_kind(value)} {value!r}")
        return value

    def strict_bool(value: Any, _: Any) -> bool:
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
    check(r.strategy in STRATEGIES, ("routing", "strategy"),
          f"unknown strategy {r.strategy!r}{suggest(r.strategy, STRATEGIES)}",
          "one of: " + ", ".join(STRATEGIES))
    check(r.prefer in PREFER, ("routing", "prefer"), f"must be one of {', '.join(PREFER)}")
    check(r.cooldown.rate_limit_seconds >= 0, ("routing", "cooldown", "rate_limit_seconds"),
          "must not be negative")
    check(r.cooldown.failure_threshold >= 1, ("routing", "cooldown", "failure_threshold"),
          "must be at least 1")
    check(r.cooldown.rate_limit_scope in ("model", "provider"),
          ("routing", "cooldown", "rate_limit_scope"), "must be model or provider")
    check(0 < r.latency_decay <= 1, ("routing", "latency_decay"),
          "must be in (0, 1]: the weight of the newest latency")
    for name, p in (c.providers or {}).items():
        base = ("providers", name)
        for i, url in enumerate([p.base_url] if p.base_url else (p.base_urls or [])):
            key = (*base, "base_url") if p.base_url else (*base, "base_urls", str(i))
            check(_valid_url(url), key, f"not a valid http(s) URL: {url!r}",
                  "write it like http://127.0.0.1:11434")
        for f in attrs.fields(Timeouts):
            v = getattr(p.timeout, f.name)
            check(v > 0, (*base, "timeout"), f"timeouts must be positive (got {f.name}={v})")
        check(p.retry.max_attempts >= 1, (*base, "retry", "max_attempts"), "must be at least 1")
        check(p.retry.wait in ("fixed", "exponential"), (*base, "retry", "wait"),
              "must be fixed or exponential")
        check(p.retry.delay >= 0 and p.retry.max_delay >= 0, (*base, "retry"),
              "delays must not be negative")
    for name, a in (c.agents or {}).items():
        base = ("agents", name)
        check(a.timeout > 0, (*base, "timeout"), f"must be positive (got {a.timeout})")
        check(a.mode in AGENT_MODES, (*base, "mode"),
              f"unknown mode {a.mode!r}{suggest(a.mode, AGENT_MODES)}",
              "one of: " + ", ".join(AGENT_MODES))
        check(a.isolation in ISOLATION, (*base, "isolation"), "must be none or worktree")
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
        check(bool(chain), ("models", name), "a route needs at least one provider/model",
              "write it like: fast: [local/llama3.2, cloud/gpt-4o-mini]")
        for i, entry in enumerate(chain):
            check("/" in entry, ("models", name, str(i)),
                  f"{entry!r} is not provider/model", "write it like local/llama3.2")
    for name, k in s.keys.items():
        base = ("keys", name)
        check(bool(k.key_env) != bool(k.sha256), base,
              "give exactly one of key_env (a variable holding the key) or sha256",
              "e.g. key_env: TEAM_KEY, or sha256: <printf %s KEY | sha256sum>")
        if k.sha256:
            check(re.fullmatch(r"[0-9a-fA-F]{64}", k.sha256) is not None, (*base, "sha256"),
                  "must be 64 hex digits", "printf %s KEY | sha256sum")
        check(k.rpm is None or k.rpm >= 1, (*base, "rpm"), "must be at least 1")
        check(k.daily_usd is None or k.daily_usd >= 0, (*base, "daily_usd"),
              "must not be negative")


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
    body: Any = (config.providers if section == "providers" else config.agents or {})
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


def structure_options(cls: type, options: Mapping[str, Any]) -> Any:
    """Build a plugin's ``Options`` attrs instance from the free keys of its section."""
    return _converter().structure(dict(options), cls)


def redacted_dict(config: Config) -> dict[str, Any]:
    """The configuration as plain data with every literal key replaced (for ``config show``)."""
    data = attrs.asdict(config, filter=lambda a, v: a.name not in ("lines", "source"))
    from .secrets import redact

    data["routing"]["state"] = redact(data["routing"]["state"])
    for section in ("providers", "agents"):
        for body in (data.get(section) or {}).values():
            if body.get("api_key"):
                body["api_key"] = "***"
            for k in list(body.get("options", {})):
                if any(s in k.lower() for s in ("key", "token", "secret", "password")):
                    body["options"][k] = "***"
    return data
