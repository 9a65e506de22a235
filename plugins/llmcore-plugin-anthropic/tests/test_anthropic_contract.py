"""The shared provider contract suite against the Anthropic provider and AnthropicFake."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from llmcore.testing.contract import ProviderContract
from llmcore.testing.fakes import AnthropicFake
from llmcore_anthropic import AnthropicProvider


class TestAnthropicContract(ProviderContract):
    provider_class = AnthropicProvider
    model = "claude-fake-1"
    not_found_error = "model: no-such-model"
    unsupported_options = frozenset({"seed"})
    hostile_stream_unit = (
        b'event: content_block_delta\ndata: {"type": "content_block_delta", '
        b'"index": 0, "delta": {"type": "text_delta", "text": "x"}}\n\n'
    )

    @pytest.fixture
    def fake(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[AnthropicFake]:
        # The fake refuses keyless requests like the API; the default key variable serves.
        monkeypatch.setenv("ANTHROPIC_API_KEY", "contract-env-key")
        with AnthropicFake() as server:
            yield server

    def base_url(self, fake: AnthropicFake) -> str:  # type: ignore[override]
        return fake.base_url

    def sent_options(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "temperature": body.get("temperature"),
            "top_p": body.get("top_p"),
            "seed": body.get("seed"),
            "max_tokens": body.get("max_tokens"),
            "stop": body.get("stop_sequences"),
        }

    def auth_header(self, key: str) -> tuple[str, str]:
        return ("x-api-key", key)
