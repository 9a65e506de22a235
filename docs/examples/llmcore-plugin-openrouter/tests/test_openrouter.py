"""The contract suite against a fake OpenAI-compatible server, and OpenRouter's extras."""

from __future__ import annotations

from collections.abc import Iterator

import llmcore
import llmcore_openrouter
import pytest
from llmcore.testing.contract import ProviderContract
from llmcore.testing.fakes import OpenAIFake, Reply
from llmcore_openrouter import OpenRouterProvider


class TestOpenRouterContract(ProviderContract):
    provider_class = OpenRouterProvider
    model = "fake-model"

    @pytest.fixture
    def fake(self) -> Iterator[OpenAIFake]:
        with OpenAIFake() as server:
            yield server

    def base_url(self, fake: OpenAIFake) -> str:
        return fake.base_url

    def provider_options(self) -> dict[str, object]:
        return {"app_name": "contract", "provider_order": ["groq"]}


def _config(fake: OpenAIFake, extra: str = "") -> str:
    return f"""
providers:
  router:
    plugin: openrouter
    base_url: {fake.base_url}
    models: [meta-llama/llama-3.2-3b-instruct]
{extra}"""


def test_sends_attribution_headers_and_provider_preferences(make_client, monkeypatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-test-1234567890")
    with OpenAIFake() as fake:
        fake.push(Reply(text="hi"), Reply(text="hi again"))
        client = make_client(
            _config(
                fake,
                """\
    site_url: https://example.org/app
    app_name: Example App
    provider_order: [groq, together]
    allow_fallbacks: false
""",
            ),
            llmcore_openrouter,
        )
        assert client.chat("hello").content == "hi"
        assert "".join(c.content for c in client.stream("hello")) == "hi again"
        for req in fake.requests:
            headers = {k.lower(): v for k, v in req.headers.items()}
            assert headers["authorization"] == "Bearer sk-or-test-1234567890"
            assert headers["http-referer"] == "https://example.org/app"
            assert headers["x-title"] == "Example App"
            assert req.json["provider"] == {"order": ["groq", "together"], "allow_fallbacks": False}
            assert req.json["model"] == "meta-llama/llama-3.2-3b-instruct"


def test_sends_no_extras_by_default(make_client) -> None:
    with OpenAIFake() as fake:
        client = make_client(_config(fake), llmcore_openrouter)
        client.chat("hello")
        headers = {k.lower() for k in fake.requests[-1].headers}
        assert "http-referer" not in headers and "x-title" not in headers
        assert "provider" not in fake.requests[-1].json


def test_a_misspelt_key_is_a_config_error(make_client) -> None:
    with OpenAIFake() as fake:
        with pytest.raises(llmcore.ConfigError) as info:  # when the client is built
            make_client(_config(fake, "    app_nmae: oops\n"), llmcore_openrouter)
        assert "app_nmae" in str(info.value) and "app_name" in str(info.value)


def test_declares_the_hook_api_of_this_llmcore() -> None:
    major = int(llmcore.HOOK_API_VERSION.split(".")[0])
    declared = llmcore_openrouter.LLMCORE_HOOK_API
    assert declared == f">={major},<{major + 1}"
