"""The shared provider contract, run against the Ollama plugin and the Ollama fake."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from llmcore.testing.contract import ProviderContract
from llmcore.testing.fakes import OllamaFake
from llmcore.testing.hostile import OLLAMA_STREAM_UNIT
from llmcore_ollama import OllamaProvider


class TestOllamaContract(ProviderContract):
    provider_class = OllamaProvider
    model = "llama3.2:latest"
    not_found_error = "model 'no-such-model' not found"
    hostile_stream_unit = OLLAMA_STREAM_UNIT
    hostile_stream_type = "application/x-ndjson"

    @pytest.fixture
    def fake(self) -> Iterator[OllamaFake]:
        with OllamaFake() as server:
            yield server

    def sent_options(self, body: dict[str, Any]) -> dict[str, Any]:
        # Ollama takes sampling options inside ``options``, max_tokens as num_predict.
        options = body.get("options") or {}
        return {
            "temperature": options.get("temperature"),
            "top_p": options.get("top_p"),
            "seed": options.get("seed"),
            "max_tokens": options.get("num_predict"),
            "stop": options.get("stop"),
        }
