"""The shared provider contract suite against the LM Studio provider and LMStudioFake."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from llmcore.testing.contract import ProviderContract
from llmcore.testing.fakes import LMStudioFake
from llmcore_lmstudio import LMStudioProvider


class TestLMStudioContract(ProviderContract):
    provider_class = LMStudioProvider
    model = "qwen2.5-7b-instruct"

    @pytest.fixture
    def fake(self) -> Iterator[LMStudioFake]:
        with LMStudioFake() as server:
            yield server

    def base_url(self, fake: LMStudioFake) -> str:  # type: ignore[override]
        return fake.base_url
