"""The model registry: bundled facts, name matching, user overrides, prices and cost,
capability checks, and sync with what a (fake vLLM) server reports, cached with a TTL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
from llmcore.config import ProviderConfig, RetryConfig, parse_config
from llmcore.errors import ConfigError
from llmcore.openai_compat import OpenAIProvider
from llmcore.registry import Registry, get_registry
from llmcore.testing.fakes import VLLMFake
from llmcore.types import Usage


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    return Registry(cache_path=tmp_path / "sync.json")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gpt-4o", "gpt-4o"),
        ("GPT-4o-mini-2024-07-18", "gpt-4o-mini"),  # the longest known prefix wins
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("llama3.1:8b-instruct-q4_K_M", "llama3.1"),
        ("Qwen/Qwen2.5-Coder-7B-Instruct", "qwen2.5-coder"),
        ("models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("gemma3-270m-q4_k_m", "gemma3:270m"),
        ("mistral-large-latest", "mistral-large"),
        ("gpt-4", None),  # not gpt-4o, not gpt-4.1: unknown rather than wrong
        ("gpt-4oops", None),
        ("totally-new-model", None),
    ],
)
def test_name_matching(reg: Registry, name: str, expected: str | None) -> None:
    assert reg.resolve(name) == expected


def test_bundled_entries_are_complete(reg: Registry) -> None:
    entries = {e.name: e for e in reg.entries()}
    assert len(entries) > 50
    families = ("gpt-", "claude-", "gemini-", "llama", "qwen", "gemma", "mistral", "deepseek")
    for family in families:
        assert any(n.startswith(family) for n in entries), family
    for e in entries.values():
        assert e.context_length and e.context_length > 0, e.name
        assert e.capabilities and set(e.capabilities) <= {
            "chat",
            "code",
            "reasoning",
            "vision",
            "embedding",
            "tools",
        }, e.name
    # hosted APIs carry their published prices
    for name in ("gpt-4o", "claude-sonnet-4-5", "gemini-2.5-pro", "deepseek-chat", "mistral-large"):
        assert entries[name].priced, name


def test_price_and_cost(reg: Registry) -> None:
    assert reg.price("gpt-4o", "openai") == (2.5, 10.0)
    assert reg.price("gpt-4o", "ollama") == (0.0, 0.0)  # a local provider type
    assert reg.price("gpt-4o", "openai", local=True) == (0.0, 0.0)
    assert reg.price("llama3.1", "openai") is None  # open weights, hosted: unknown price
    assert reg.price("nope", "openai") is None
    u = Usage(input_tokens=1_000_000, output_tokens=500_000)
    assert reg.cost("claude-sonnet-4-5-20250929", "anthropic", u) == pytest.approx(3 + 7.5)
    # cached input tokens (part of input_tokens) at the cached rate: 0.8M*2.5 + 0.2M*1.25
    cached = Usage(input_tokens=1_000_000, output_tokens=0, cached_tokens=200_000)
    assert reg.cost("gpt-4o", "openai", cached) == pytest.approx(2.0 + 0.25)
    assert reg.cost("gpt-4o", "openai", u, prices=(1.0, 1.0)) == pytest.approx(1.5)
    assert reg.cost("llama3.1", "ollama", u) == 0.0
    assert reg.cost("mystery", "openai", u) is None
    assert reg.cost(
        "gpt-4o", "openai", {"input_tokens": 2000, "output_tokens": 0}
    ) == pytest.approx(0.005)


def test_qualifies(reg: Registry) -> None:
    assert reg.qualifies("gpt-4o", "openai", ["vision", "code"], 100_000)
    assert not reg.qualifies("gpt-4o", "openai", ["reasoning"], None)
    assert not reg.qualifies("gpt-4o", "openai", [], 200_000)
    assert reg.qualifies("llama3.2-vision:11b", "ollama", ["vision"], None)
    assert not reg.qualifies("llama3.1:8b", "ollama", ["vision"], None)
    # unknown models qualify only when nothing is asked
    assert reg.qualifies("mystery", "openai", [], None)
    assert reg.qualifies(None, "openai", None, None)
    assert not reg.qualifies("mystery", "openai", ["chat"], None)
    assert not reg.qualifies("mystery", "openai", [], 1000)
    # provider spellings of tags are understood
    assert reg.qualifies("qwen3:8b", "ollama", ["thinking"], None)


def test_user_file_overrides_and_adds(tmp_path: Path) -> None:
    user = tmp_path / "models.yaml"
    user.write_text("""
models:
  gpt-4o:
    price: {input: 1.0, output: 2.0}
  my-finetune:
    context: 16384
    capabilities: [chat, Code]
    price: {input: 0.5, output: 0.5}
local_provider_types: [homebrew]
""")
    cfg = parse_config(f"registry: {{path: {user}}}")
    reg = get_registry(cfg)
    assert get_registry(cfg) is reg  # built once
    gpt = reg.info("gpt-4o", "openai")
    assert gpt is not None
    assert (gpt.input_per_million, gpt.output_per_million) == (1.0, 2.0)
    assert gpt.context_length == 128000  # the rest still comes from the bundled entry
    assert gpt.sources == ["bundled", "user"]
    assert reg.qualifies("my-finetune-v2", "openai", ["code"], 16000)
    assert reg.price("my-finetune", "homebrew") == (0.0, 0.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models:\n  x: {contxt: 5}", r"models\.x\.contxt: unknown key, did you mean context\?"),
        ("models:\n  x: {context: -1}", r"models\.x\.context must be a positive whole number"),
        ("models:\n  x: {price: {input: cheap}}", r"models\.x\.price\.input must be a number"),
        ("models:\n  x: {capabilities: vision}", r"capabilities must be a list"),
        ("modles: {}", r"unknown top-level key 'modles'"),
        ("models: [", r"not valid YAML"),
    ],
)
def test_user_file_errors_are_clear(tmp_path: Path, text: str, message: str) -> None:
    user = tmp_path / "bad.yaml"
    user.write_text(text)
    with pytest.raises(ConfigError, match=message):
        Registry(user, cache_path=tmp_path / "c.json")


def test_missing_user_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"registry\.path points to a missing file"):
        Registry(tmp_path / "nope.yaml")


def _list_calls(fake: Any) -> int:
    return sum(1 for r in fake.requests if r.path == "/v1/models")


def test_sync_from_vllm_with_ttl_and_refresh(tmp_path: Path) -> None:
    cache = tmp_path / "sync.json"
    with VLLMFake() as fake:
        fake.models = ["Qwen/Qwen2.5-Coder-7B-Instruct", "my-own-model"]
        fake.max_model_len = 4096
        provider = OpenAIProvider(
            ProviderConfig(name="gpu", plugin="openai", base_url=fake.base_url)
        )
        reg = Registry(cache_path=cache, ttl_seconds=3600)
        before = reg.info("Qwen/Qwen2.5-Coder-7B-Instruct", "openai")
        assert before is not None and before.context_length == 32768
        assert reg.sync([provider]) == {"gpu": 2}
        calls = _list_calls(fake)
        after = reg.info("Qwen/Qwen2.5-Coder-7B-Instruct", "openai")
        assert after is not None
        assert after.context_length == 4096  # what the server runs with wins
        assert "code" in after.capabilities  # the bundled facts are kept
        assert after.sources == ["bundled", "synced:gpu"]
        assert not reg.qualifies("Qwen/Qwen2.5-Coder-7B-Instruct", "openai", [], 8000)
        mine = reg.info("my-own-model", "openai")
        assert mine is not None and mine.context_length == 4096
        # synced facts are per provider type
        other = reg.info("Qwen/Qwen2.5-Coder-7B-Instruct", "ollama")
        assert other is not None and other.context_length == 32768

        assert reg.sync([provider]) == {}  # fresh: nothing asked
        assert _list_calls(fake) == calls
        # another process reads the cache from disk without asking the server
        again = Registry(cache_path=cache, ttl_seconds=3600)
        got = again.info("my-own-model", "openai")
        assert got is not None and got.context_length == 4096
        assert _list_calls(fake) == calls

        fake.max_model_len = 8192
        assert reg.sync([provider], force=True) == {"gpu": 2}  # `llmcore models --refresh`
        assert _list_calls(fake) > calls
        refreshed = reg.info("my-own-model", "openai")
        assert refreshed is not None and refreshed.context_length == 8192
        provider.close()
    reg.invalidate()
    assert reg.info("my-own-model", "openai") is None
    assert not cache.exists()


def test_sync_keeps_old_facts_when_a_provider_is_down(tmp_path: Path) -> None:
    cache = tmp_path / "sync.json"
    with VLLMFake() as fake:
        fake.models = ["served-here"]
        provider = OpenAIProvider(
            ProviderConfig(name="gpu", plugin="openai", base_url=fake.base_url)
        )
        reg = Registry(cache_path=cache, ttl_seconds=0)
        reg.sync([provider])
        provider.close()
    # the server is gone now (a fresh provider: no kept-alive connection to it)
    gone = OpenAIProvider(attrs.evolve(provider.config, retry=RetryConfig(max_attempts=1)))
    result = reg.sync([gone])
    assert isinstance(result["gpu"], str) and "ConnectionError" in result["gpu"]
    served = reg.info("served-here", "openai")
    assert served is not None and served.context_length == 4096
    gone.close()
