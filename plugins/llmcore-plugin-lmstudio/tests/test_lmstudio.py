"""LM Studio: the native model list, its fallback, the optional key, the default URL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import llmcore
import pytest
from llmcore.config import ProviderConfig
from llmcore.testing.contract import dead_url
from llmcore.testing.fakes import LMStudioFake, OpenAIFake
from llmcore_lmstudio import LMStudioProvider


@pytest.fixture
def fake() -> Iterator[LMStudioFake]:
    with LMStudioFake() as server:
        yield server


def make(**kw: Any) -> LMStudioProvider:
    fields: dict[str, Any] = {
        "name": "lms",
        "plugin": "lmstudio",
        "models": ["qwen2.5-7b-instruct"],
    }
    fields.update(kw)
    return LMStudioProvider(ProviderConfig(**fields))


def test_defaults() -> None:
    p = make()
    assert p.base_url == "http://localhost:1234/v1"
    assert p.native_root == "http://localhost:1234"
    assert p.api_key is None
    assert "lms server start" in p.start_hint


def test_models_from_the_native_api(fake: LMStudioFake) -> None:
    models = {m.name: m for m in make(base_url=fake.base_url).models()}
    assert fake.requests[-1].path == "/api/v0/models"
    llm = models["qwen2.5-7b-instruct"]
    assert llm.capabilities == ["completion"] and llm.loaded is True
    assert llm.context_length == 32768 and llm.quantization == "Q4_K_M"
    assert llm.family == "qwen2" and llm.provider == "lms"
    vlm = models["qwen2-vl-7b-instruct"]
    assert vlm.capabilities == ["completion", "vision"] and vlm.loaded is False
    emb = models["text-embedding-nomic-embed-text-v1.5"]
    assert emb.capabilities == ["embedding"] and emb.context_length == 2048


def test_loaded_context_length_wins_when_reported(fake: LMStudioFake) -> None:
    fake.catalog[0]["loaded_context_length"] = 8192
    [first, *_] = make(base_url=fake.base_url).models()
    assert first.context_length == 8192


def test_async_models(fake: LMStudioFake) -> None:
    p = make(base_url=fake.base_url)

    async def run() -> list[llmcore.ModelInfo]:
        try:
            return await p.amodels()
        finally:
            await p.aclose()

    assert [m.name for m in asyncio.run(run())] == fake.models


def test_falls_back_to_v1_models_without_the_native_api() -> None:
    with OpenAIFake() as plain:
        models = make(base_url=plain.base_url).models()
    assert [m.name for m in models] == ["fake-model"]
    assert [r.path for r in plain.requests] == ["/api/v0/models", "/v1/models"]


def test_key_is_optional_and_sent_as_bearer(
    fake: LMStudioFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    make(base_url=fake.base_url).chat(llmcore.ChatRequest(messages=[llmcore.Message("user", "hi")]))
    assert "Authorization" not in fake.requests[-1].headers
    monkeypatch.setenv("LMS_TOKEN", "lms-secret-token-1")
    p = make(base_url=fake.base_url, api_key_env="LMS_TOKEN")
    p.models()
    assert fake.requests[-1].headers.get("Authorization") == "Bearer lms-secret-token-1"


def test_not_running_says_how_to_start_it(fake: LMStudioFake) -> None:
    p = make(base_url=dead_url(fake.base_url))
    with pytest.raises(llmcore.ProviderConnectionError) as info:
        p.models()
    assert "not reachable" in info.value.message
    assert info.value.hint and "lms server start" in info.value.hint
