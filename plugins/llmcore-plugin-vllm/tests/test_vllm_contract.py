"""The shared provider contract suite against the vLLM provider and VLLMFake."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from llmcore.testing.contract import ProviderContract
from llmcore.testing.fakes import VLLMFake
from llmcore_vllm import VLLMProvider


class TestVLLMContract(ProviderContract):
    provider_class = VLLMProvider
    model = "fake-model"

    @pytest.fixture
    def fake(self) -> Iterator[VLLMFake]:
        with VLLMFake() as server:
            yield server

    def base_url(self, fake: VLLMFake) -> str:  # type: ignore[override]
        return fake.base_url
