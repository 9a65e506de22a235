"""The shared provider contract suite, run against the core ``openai`` type and OpenAIFake."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from llmcore.openai_compat import OpenAIProvider
from llmcore.testing.contract import ProviderContract
from llmcore.testing.fakes import OpenAIFake


class TestOpenAIContract(ProviderContract):
    provider_class = OpenAIProvider
    model = "fake-model"

    @pytest.fixture
    def fake(self) -> Iterator[OpenAIFake]:
        with OpenAIFake() as server:
            yield server

    def base_url(self, fake: OpenAIFake) -> str:  # type: ignore[override]
        return fake.base_url


class TestOpenAIContractWithoutStreamUsage(TestOpenAIContract):
    """The same contract when the server sends no usage block in streams (the provider
    then counts it from the stream)."""

    stream_usage_exact = False
    # The malicious-server kit does not depend on stream usage: it runs once, above.
    test_hostile_server = None  # type: ignore[assignment]

    def provider_options(self) -> dict[str, object]:
        return {"stream_usage": False}
