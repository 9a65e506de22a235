"""The model registry: what each model can do, how much context it takes, what it costs.

Three layers, later ones winning field by field:

1. the bundled ``llmcore/data/models.yaml`` (well-known models with published prices);
2. what providers report about the models they serve (:meth:`Registry.sync`), cached on
   disk with a TTL so a CLI start never waits on the network;
3. the user's own YAML (``registry.path``), in the bundled file's format, to fix or add.

The router asks :meth:`Registry.qualifies` to honour ``require=[...]``/``min_context`` and
:meth:`Registry.cost` to price a request. A model on a local provider costs 0.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .errors import ConfigError
from .pricing import cost_usd

if TYPE_CHECKING:
    from .config import Config, RegistryConfig
    from .provider import Provider

CAPABILITIES = ("chat", "code", "reasoning", "vision", "embedding", "tools")
#: Characters after which a longer model name still belongs to a shorter known one.
_SEPARATORS = "-:_@/"
#: How providers name capabilities → our tags (Ollama's /api/show among others).
_CAPABILITY_ALIASES = {
    "completion": "chat",
    "thinking": "reasoning",
    "embed": "embedding",
    "embeddings": "embedding",
    "tool": "tools",
    "function_calling": "tools",
    "image": "vision",
    "multimodal": "vision",
}
_ENTRY_KEYS = {"aliases", "context", "capabilities", "price", "family", "notes"}
_PRICE_KEYS = {"input", "output", "cached_input"}
SYNC_CACHE_VERSION = 1


@attrs.define
class ModelEntry:
    """Everything known about one model (``None`` = not known)."""

    name: str
    context_length: int | None = None
    capabilities: list[str] = attrs.field(factory=list)
    input_per_million: float | None = None
    output_per_million: float | None = None
    cached_input_per_million: float | None = None
    aliases: list[str] = attrs.field(factory=list)
    family: str | None = None
    #: Where the fields came from, in order applied: bundled, synced:<provider>, user.
    sources: list[str] = attrs.field(factory=list)

    @property
    def priced(self) -> bool:
        return self.input_per_million is not None and self.output_per_million is not None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


#: Provider types whose servers follow Ollama's naming: a name without a tag is ``:latest``.
TAGGED_TYPES = frozenset({"ollama"})


def model_name(model: str | None, provider_type: str) -> str | None:
    """The one name of ``model`` on a provider of ``provider_type``.

    Ollama treats ``llama3.2`` and ``llama3.2:latest`` as the same model; so does llmcore
    everywhere a model name is compared or used as a key (registry, plan, cooldowns,
    ``largest_first``, capability selection). Other servers' names are kept as they are.
    """
    if not model or provider_type not in TAGGED_TYPES:
        return model
    return model if ":" in model.rsplit("/", 1)[-1] else f"{model}:latest"


#: A parameter count in a model name (``70b``, ``270m``, ``1.5B``); compiled on first use.
_PARAMS = r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)\s*([bBmM])(?![A-Za-z])"


def parameter_count(text: str | None) -> float | None:
    """Billions of parameters named in ``text``: ``llama3:70b`` → 70, ``gemma-3-270m`` → 0.27."""
    if not text:
        return None
    found = re.findall(_PARAMS, text)  # re caches the compiled pattern
    if not found:
        return None
    value, unit = found[-1]
    return float(value) / (1000.0 if unit in "mM" else 1.0)


def normalize_capability(tag: str) -> str:
    t = tag.strip().lower()
    return _CAPABILITY_ALIASES.get(t, t)


def _parse_entries(data: Any, source: str) -> dict[str, dict[str, Any]]:
    """Check one registry YAML document and return ``{name: fields}`` (lower-case names)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the registry file must be a mapping with a 'models:' key")
    unknown = set(data) - {"version", "models", "local_provider_types"}
    if unknown:
        raise ConfigError(
            f"{source}: unknown top-level key {sorted(unknown)[0]!r}",
            hint="allowed: version, models, local_provider_types",
        )
    models = data.get("models") or {}
    if not isinstance(models, dict):
        raise ConfigError(f"{source}: 'models' must map model names to their fields")
    out: dict[str, dict[str, Any]] = {}
    for name, body in models.items():
        where = f"{source}: models.{name}"
        body = body or {}
        if not isinstance(body, dict):
            raise ConfigError(f"{where} must be a mapping (context, capabilities, price, …)")
        bad = set(body) - _ENTRY_KEYS
        if bad:
            from .config import suggest

            key = sorted(bad)[0]
            raise ConfigError(
                f"{where}.{key}: unknown key{suggest(key, _ENTRY_KEYS)}",
                hint="allowed: " + ", ".join(sorted(_ENTRY_KEYS)),
            )
        fields: dict[str, Any] = {}
        if "context" in body:
            ctx = body["context"]
            if isinstance(ctx, bool) or not isinstance(ctx, int) or ctx <= 0:
                raise ConfigError(f"{where}.context must be a positive whole number of tokens")
            fields["context_length"] = ctx
        if "capabilities" in body:
            caps = body["capabilities"]
            if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
                raise ConfigError(
                    f"{where}.capabilities must be a list of tags",
                    hint="tags: " + ", ".join(CAPABILITIES),
                )
            fields["capabilities"] = sorted({normalize_capability(c) for c in caps})
        if "aliases" in body:
            al = body["aliases"]
            if not isinstance(al, list):
                raise ConfigError(f"{where}.aliases must be a list of names")
            fields["aliases"] = [str(a).lower() for a in al]
        if "family" in body:
            fields["family"] = str(body["family"])
        if "price" in body:
            price = body["price"]
            if not isinstance(price, dict) or set(price) - _PRICE_KEYS:
                raise ConfigError(
                    f"{where}.price must be a mapping of input/output/cached_input",
                    hint="USD per million tokens, e.g. price: {input: 2.5, output: 10}",
                )
            for key, field in (
                ("input", "input_per_million"),
                ("output", "output_per_million"),
                ("cached_input", "cached_input_per_million"),
            ):
                if key in price:
                    v = price[key]
                    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                        raise ConfigError(f"{where}.price.{key} must be a number >= 0")
                    fields[field] = float(v)
        out[str(name).lower()] = fields
    return out


def _load_yaml(path: Path, source: str) -> Any:
    import yaml

    try:
        # libyaml's loader when present: the bundled registry loads in ~5 ms instead of ~40.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    except OSError as exc:
        raise ConfigError(
            f"cannot read the model registry {path}: {exc}",
            hint="fix or remove registry.path in llmcore.yaml",
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {exc}") from None


def default_cache_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("llmcore")) / "models-sync.json"


class Registry:
    """Bundled + synced + user model facts. Thread-safe; cheap to query."""

    def __init__(
        self,
        user_path: str | os.PathLike[str] | None = None,
        ttl_seconds: float = 86400.0,
        cache_path: str | os.PathLike[str] | None = None,
    ) -> None:
        bundled_path = Path(__file__).parent / "data" / "models.yaml"
        bundled_doc = _load_yaml(bundled_path, "bundled models.yaml")
        self._bundled = _parse_entries(bundled_doc, "bundled models.yaml")
        self.local_types: set[str] = set(bundled_doc.get("local_provider_types") or [])
        self._user: dict[str, dict[str, Any]] = {}
        #: Facts offered by plugins (the model-facts hook), merged; and who offered them.
        self._plugin: dict[str, dict[str, Any]] = {}
        self._plugin_sources: set[str] = set()
        if user_path:
            p = Path(user_path).expanduser()
            if not p.is_file():
                raise ConfigError(
                    f"registry.path points to a missing file: {p}",
                    hint="create it (same format as the bundled models.yaml) "
                    "or remove registry.path",
                )
            doc = _load_yaml(p, str(p))
            self._user = _parse_entries(doc, str(p))
            if isinstance(doc, dict):
                self.local_types |= set(doc.get("local_provider_types") or [])
        self.ttl_seconds = ttl_seconds
        self.cache_path = Path(cache_path) if cache_path else default_cache_path()
        self._lock = threading.Lock()
        self._synced: dict[str, Any] = self._read_cache()
        self._index()

    # -- lookup ------------------------------------------------------------------------
    def _index(self) -> None:
        names: dict[str, str] = {}
        for layer in (self._bundled, self._plugin, self._user):
            for name, fields in layer.items():
                names[name] = name
                for a in fields.get("aliases", []):
                    names.setdefault(a, name)
        self._names = names
        # longest first, so gpt-4o-mini wins over gpt-4o for gpt-4o-mini-2024-07-18
        self._by_length = sorted(names, key=len, reverse=True)
        synced: dict[tuple[str, str], dict[str, Any]] = {}
        for pname, body in (self._synced.get("providers") or {}).items():
            for model, fields in (body.get("models") or {}).items():
                ptype = str(body.get("type") or "")
                key = (ptype, (model_name(model, ptype) or model).lower())
                merged = synced.setdefault(key, {"_from": pname})
                merged.update({k: v for k, v in fields.items() if v not in (None, [])})
        self._synced_index = synced
        self._resolved: dict[str, str | None] = {}

    def resolve(self, model: str) -> str | None:
        """The registry name ``model`` refers to, or ``None`` when unknown."""
        try:
            return self._resolved[model]
        except KeyError:
            pass
        found = self._resolve(model)
        if len(self._resolved) < 4096:  # names come from config and servers: few
            self._resolved[model] = found
        return found

    def _resolve(self, model: str) -> str | None:
        m = model.strip().lower()
        candidates = [m]
        if "/" in m:  # openai/gpt-4o, models/gemini-2.5-pro, Qwen/Qwen2.5-Coder-7B
            candidates.append(m.rsplit("/", 1)[1])
        for c in candidates:
            if c in self._names:
                return self._names[c]
        for c in candidates:
            for known in self._by_length:
                if c.startswith(known) and c[len(known)] in _SEPARATORS:
                    return self._names[known]
        return None

    def info(self, model: str | None, provider_type: str) -> ModelEntry | None:
        """What is known about ``model`` as served by a provider of ``provider_type``."""
        if not model:
            return None
        name = self.resolve(model)
        synced = self._synced_index.get(
            (provider_type, (model_name(model, provider_type) or model).lower())
        )
        if name is None and synced is None:
            return None
        entry = ModelEntry(name=name or model)
        if name is not None and name in self._bundled:
            _apply(entry, self._bundled[name], "bundled")
        if name is not None and name in self._plugin:
            _apply(entry, self._plugin[name], "plugin")
        if synced is not None:
            _apply(
                entry,
                {k: v for k, v in synced.items() if k != "_from"},
                f"synced:{synced['_from']}",
            )
        if name is not None and name in self._user:
            _apply(entry, self._user[name], "user")
        return entry

    def entries(self) -> list[ModelEntry]:
        """Every bundled and user entry (synced facts merged in for their provider types)."""
        names = sorted(set(self._bundled) | set(self._plugin) | set(self._user))
        out = []
        for n in names:
            e = self.info(n, "")
            if e is not None:
                out.append(e)
        return out

    def qualifies(
        self,
        model: str | None,
        provider_type: str,
        require: list[str] | None,
        min_context: int | None,
    ) -> bool:
        """May ``model`` serve a request needing ``require`` tags and ``min_context`` tokens?

        A model the registry does not know qualifies only when nothing is required: routing
        to it blind could send an image to a text-only model.
        """
        needs = {normalize_capability(r) for r in (require or [])}
        if not needs and not min_context:
            return True
        entry = self.info(model, provider_type)
        if entry is None:
            return False
        if not needs <= set(entry.capabilities):
            return False
        if min_context:
            return entry.context_length is not None and entry.context_length >= min_context
        return True

    def add_facts(self, source: str, doc: Any) -> None:
        """Merge the model facts ``source`` (a plugin) offers, in the bundled file's format.

        Raises ``ConfigError`` when ``doc`` does not follow the format. Adding the same
        source twice does nothing; a model two plugins describe keeps the first one's fields.
        """
        if source in self._plugin_sources or not doc:
            return
        entries = _parse_entries(doc, f"model facts from {source}")
        with self._lock:
            self._plugin_sources.add(source)
            for name, fields in entries.items():
                merged = self._plugin.setdefault(name, {})
                for k, v in fields.items():
                    merged.setdefault(k, v)
            self.local_types |= set(doc.get("local_provider_types") or [])
            self._index()

    # -- money -------------------------------------------------------------------------
    def is_local(self, provider_type: str) -> bool:
        return provider_type in self.local_types

    def price(
        self, model: str | None, provider_type: str, *, local: bool | None = None
    ) -> tuple[float, float] | None:
        """USD per million (input, output) tokens; ``(0, 0)`` on a local provider.

        ``local`` overrides the guess from the provider type (pass ``Provider.local``).
        ``None`` when the price is not known.
        """
        if local if local is not None else self.is_local(provider_type):
            return (0.0, 0.0)
        entry = self.info(model, provider_type)
        if entry is None or not entry.priced:
            return None
        return (entry.input_per_million or 0.0, entry.output_per_million or 0.0)

    def cost(
        self,
        model: str | None,
        provider_type: str,
        usage: Any,
        *,
        local: bool | None = None,
        prices: tuple[float, float] | None = None,
    ) -> float | None:
        """USD for one call's ``usage`` (anything with ``input_tokens``/``output_tokens``).

        ``prices`` (per million, e.g. from a provider's ``cost:`` config) wins over the
        registry. Cached input tokens are charged at the cached rate when one is known;
        they are counted inside ``input_tokens`` (the OpenAI convention).
        """
        if usage is None:
            return None
        tin = _tokens(usage, "input_tokens")
        tout = _tokens(usage, "output_tokens")
        if prices is not None:
            return cost_usd((prices[0], prices[1], None), tin, tout)
        if local if local is not None else self.is_local(provider_type):
            return 0.0
        entry = self.info(model, provider_type)
        if entry is None or not entry.priced:
            return None
        return cost_usd(
            (
                entry.input_per_million or 0.0,
                entry.output_per_million or 0.0,
                entry.cached_input_per_million,
            ),
            tin,
            tout,
            _tokens(usage, "cached_tokens"),
        )

    # -- sync with what providers report -------------------------------------------------
    def _read_cache(self) -> dict[str, Any]:
        try:
            data = json.loads(self.cache_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("version") != SYNC_CACHE_VERSION:
            return {}
        return data

    def synced_at(self, provider_name: str) -> float | None:
        body = (self._synced.get("providers") or {}).get(provider_name)
        return float(body["at"]) if body and "at" in body else None

    def sync(
        self,
        providers: Iterable[Provider] | Mapping[str, Provider],
        force: bool = False,
        timeout: float = 10.0,
    ) -> dict[str, int | str]:
        """Ask each provider for its models (in parallel) and remember what they report.

        A provider synced less than ``ttl_seconds`` ago is skipped unless ``force`` (what
        ``llmcore models --refresh`` passes). Returns ``{provider: models found}``, or the
        error text for a provider that could not answer (its old facts are kept).
        """
        from concurrent.futures import ThreadPoolExecutor, wait

        items = list(providers.values() if isinstance(providers, Mapping) else providers)
        now = time.time()
        due = [
            p for p in items if force or (self.synced_at(p.name) or 0.0) + self.ttl_seconds <= now
        ]
        result: dict[str, int | str] = {}
        if not due:
            return result
        pool = ThreadPoolExecutor(max_workers=min(8, len(due)), thread_name_prefix="llmcore-sync")
        futures = {p.name: (p, pool.submit(p.models)) for p in due}
        wait([f for _, f in futures.values()], timeout=timeout)
        pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            data = self._read_cache() or {"version": SYNC_CACHE_VERSION, "providers": {}}
            data.setdefault("providers", {})
            for name, (p, fut) in futures.items():
                if not fut.done():
                    result[name] = f"no answer within {timeout:g} s"
                    continue
                exc = fut.exception()
                if exc is not None:
                    result[name] = f"{type(exc).__name__}: {exc}"
                    continue
                models: dict[str, Any] = {}
                for info in fut.result():
                    models[info.name] = {
                        "context_length": info.context_length,
                        "capabilities": sorted(
                            {normalize_capability(c) for c in info.capabilities}
                        ),
                        "family": info.family,
                    }
                data["providers"][name] = {"type": p.type_name, "at": time.time(), "models": models}
                result[name] = len(models)
            self._write_cache(data)
            self._synced = data
            self._index()
        return result

    def invalidate(self) -> None:
        """Forget every synced fact (the next :meth:`sync` asks every provider again)."""
        with self._lock:
            try:
                self.cache_path.unlink()
            except FileNotFoundError:
                pass
            self._synced = {}
            self._index()

    def _write_cache(self, data: dict[str, Any]) -> None:
        try:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.cache_path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(tmp, self.cache_path)
        except OSError:
            pass  # a read-only cache dir costs a re-sync next time, nothing more


def _apply(entry: ModelEntry, fields: Mapping[str, Any], source: str) -> None:
    for k, v in fields.items():
        if hasattr(entry, k) and k != "name":
            setattr(entry, k, list(v) if isinstance(v, list) else v)
    entry.sources.append(source)


def _tokens(usage: Any, field: str) -> int:
    v = usage.get(field) if isinstance(usage, Mapping) else getattr(usage, field, None)
    return int(v or 0)


_CACHE: dict[tuple[Any, ...], Registry] = {}
_CACHE_LOCK = threading.Lock()


def get_registry(config: Config | RegistryConfig | None = None) -> Registry:
    """The registry for ``config`` (its ``registry:`` section), built once and reused.

    Rebuilt when the user's registry file changes on disk.
    """
    rc: Any = getattr(config, "registry", config)
    path = getattr(rc, "path", None)
    ttl = float(getattr(rc, "ttl_seconds", 86400.0))
    cache = getattr(rc, "cache_path", None)
    mtime = None
    if path:
        try:
            mtime = Path(path).expanduser().stat().st_mtime
        except OSError:
            mtime = None
    key = (path, ttl, cache, mtime, os.environ.get("XDG_CACHE_HOME"))
    with _CACHE_LOCK:
        reg = _CACHE.get(key)
        if reg is None:
            reg = _CACHE[key] = Registry(path, ttl_seconds=ttl, cache_path=cache)
        return reg
