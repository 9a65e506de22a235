"""The Anthropic provider against AnthropicFake: defaults, headers, tools both ways,
thinking, prompt-caching cost, in-stream errors, the /v1 hint, failover from an OpenAI
server, and ``llmcore chat --provider claude`` as the real command."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import llmcore
import pytest
from llmcore.config import ProviderConfig, load_config
from llmcore.runtime import Runtime
from llmcore.testing.fakes import AnthropicFake, OpenAIFake, Reply
from llmcore_anthropic import AnthropicProvider

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def fake() -> Iterator[AnthropicFake]:
    with AnthropicFake() as server:
        yield server


def make(fake: AnthropicFake | None = None, **kw: Any) -> AnthropicProvider:
    fields: dict[str, Any] = {
        "name": "claude",
        "plugin": "anthropic",
        "api_key": "sk-ant-t",
        "models": ["claude-fake-1"],
    }
    if fake is not None:
        fields["base_url"] = fake.base_url
    fields.update(kw)
    return AnthropicProvider(ProviderConfig(**fields))


def test_defaults_and_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env")
    p = AnthropicProvider(ProviderConfig(name="c", plugin="anthropic"))
    assert p.base_url == "https://api.anthropic.com"
    assert p.api_key == "sk-ant-from-env"
    assert AnthropicProvider.local is False, "hosted: requests must be priced"
    rt = Runtime(llmcore.Config())
    record = next(r for r in rt.pm.records if r.name == "llmcore-plugin-anthropic")
    assert record.status == "loaded", record.error
    assert rt.provider_types["anthropic"] is AnthropicProvider
    # Hosted providers are not configured implicitly (no file = local servers only).
    assert "anthropic" not in rt.provider_configs()


def test_headers_and_options_reach_the_api(fake: AnthropicFake) -> None:
    fake.push(Reply(text="ok"))
    p = make(
        fake,
        options={
            "anthropic_version": "2024-01-01",
            "beta": ["b1", "b2"],
            "default_max_tokens": 77,
            "top_k": 5,
        },
    )
    p.chat(
        llmcore.ChatRequest(
            messages=[llmcore.Message("system", "terse"), llmcore.Message("user", "hi")]
        )
    )
    req = fake.message_requests()[-1]
    headers = {k.lower(): v for k, v in req.headers.items()}
    assert headers["x-api-key"] == "sk-ant-t" and "authorization" not in headers
    assert headers["anthropic-version"] == "2024-01-01"
    assert headers["anthropic-beta"] == "b1,b2"
    body = req.json
    assert body["max_tokens"] == 77 and body["top_k"] == 5 and body["system"] == "terse"
    assert body["messages"] == [{"role": "user", "content": "hi"}]


def test_a_bad_option_is_a_config_error_naming_it(tmp_path: Path) -> None:
    cfg = tmp_path / "llmcore.yaml"
    cfg.write_text("providers:\n  claude:\n    plugin: anthropic\n    default_max_tokens: 0\n")
    with pytest.raises(llmcore.ConfigError) as info:
        Runtime(load_config(cfg)).validate()
    assert "'default_max_tokens' must be >= 1" in str(info.value)


def test_tools_both_ways(fake: AnthropicFake) -> None:
    fake.push(
        Reply(
            text="Checking.",
            tool_calls=[{"name": "get_weather", "id": "toolu_7", "arguments": {"city": "Oslo"}}],
        ),
        Reply(text="It is 3C in Oslo."),
    )
    p = make(fake)
    first = p.chat(
        llmcore.ChatRequest(
            messages=[llmcore.Message("user", "Weather in Oslo?")],
            tools=[WEATHER],
            tool_choice="auto",
        )
    )
    assert first.finish_reason == "tool_calls" and first.content == "Checking."
    assert first.tool_calls == [
        {
            "id": "toolu_7",
            "type": "function",
            "function": {"name": "get_weather", "arguments": json.dumps({"city": "Oslo"})},
        }
    ]
    sent = fake.message_requests()[-1].json
    assert sent["tools"][0]["name"] == "get_weather"
    assert sent["tools"][0]["input_schema"]["required"] == ["city"]
    assert sent["tool_choice"] == {"type": "auto"}
    # The answer goes back as an OpenAI-shaped conversation, as any llmcore caller sends it.
    second = p.chat(
        llmcore.ChatRequest(
            messages=[
                llmcore.Message("user", "Weather in Oslo?"),
                llmcore.Message("assistant", first.content, tool_calls=first.tool_calls),
                llmcore.Message("tool", "3C", tool_call_id="toolu_7"),
            ],
            tools=[WEATHER],
        )
    )
    assert second.content == "It is 3C in Oslo." and second.finish_reason == "stop"
    turns = fake.message_requests()[-1].json["messages"]
    assert turns[1]["content"][1] == {
        "type": "tool_use",
        "id": "toolu_7",
        "name": "get_weather",
        "input": {"city": "Oslo"},
    }
    assert turns[2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_7", "content": "3C"}],
    }


@pytest.mark.parametrize("is_async", [False, True])
def test_streamed_tools_and_thinking(fake: AnthropicFake, is_async: bool) -> None:
    fake.push(
        Reply(
            text="Let me look.",
            thinking="they want weather",
            tool_calls=[
                {
                    "name": "get_weather",
                    "id": "toolu_3",
                    "arguments": {"city": "Lima", "units": "metric"},
                }
            ],
            usage=(40, 12),
        )
    )
    p = make(fake)
    req = llmcore.ChatRequest(
        messages=[llmcore.Message("user", "Lima?")], tools=[WEATHER], stream=True
    )
    if is_async:

        async def run() -> list[llmcore.StreamChunk]:
            try:
                return [c async for c in p.astream(req)]
            finally:
                await p.aclose()

        chunks = asyncio.run(run())
    else:
        chunks = list(p.stream(req))
    assert "".join(c.thinking for c in chunks) == "they want weather"
    assert "".join(c.content for c in chunks) == "Let me look."
    last = chunks[-1]
    assert last.finish_reason == "tool_calls"
    assert [json.loads(t["function"]["arguments"]) for t in last.tool_calls or []] == [
        {"city": "Lima", "units": "metric"}
    ]
    assert last.usage is not None and (last.usage.input_tokens, last.usage.output_tokens) == (
        40,
        12,
    )


def test_image_reaches_the_api_as_an_image_block(fake: AnthropicFake) -> None:
    fake.push(Reply(text="A cat."))
    make(fake).chat(
        llmcore.ChatRequest(
            messages=[
                llmcore.Message("user", "What is this?", images=["data:image/jpeg;base64,/9j/4AAQ"])
            ]
        )
    )
    [block, text] = fake.message_requests()[-1].json["messages"][0]["content"]
    assert block == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"},
    }
    assert text == {"type": "text", "text": "What is this?"}


def test_prompt_caching_is_priced_at_the_cache_read_price(
    tmp_path: Path, fake: AnthropicFake
) -> None:
    fake.push(
        Reply(
            text="cheap", model="claude-sonnet-4-5", usage=(1000, 100), extra={"cache_read": 10000}
        )
    )
    cfg = tmp_path / "llmcore.yaml"
    cfg.write_text(
        f"providers:\n  claude:\n    plugin: anthropic\n    api_key: sk-ant-t\n"
        f"    base_url: {fake.base_url}\n    models: [claude-sonnet-4-5]\n"
        "metrics:\n  enabled: false\n"
    )
    with llmcore.Client(load_config(cfg)) as client:
        r = client.chat("hi")
    assert (r.usage.input_tokens, r.usage.cached_tokens) == (11000, 10000)
    # Registry: claude-sonnet-4-5 input 3.00, cache read 0.30, output 15.00 per million.
    assert r.cost_usd == pytest.approx((1000 * 3.00 + 10000 * 0.30 + 100 * 15.00) / 1e6)


def test_the_plugin_prices_models_the_core_does_not_list(
    tmp_path: Path, fake: AnthropicFake
) -> None:
    fake.push(
        Reply(text="old but cheap", model="claude-3-haiku-20240307", usage=(1_000_000, 1_000_000))
    )
    cfg = tmp_path / "llmcore.yaml"
    cfg.write_text(
        f"providers:\n  claude:\n    plugin: anthropic\n    api_key: sk-ant-t\n"
        f"    base_url: {fake.base_url}\n    models: [claude-3-haiku-20240307]\n"
        "metrics:\n  enabled: false\n"
    )
    with llmcore.Client(load_config(cfg)) as client:
        assert client.chat("hi").cost_usd == pytest.approx(0.25 + 1.25)


def test_an_overloaded_error_inside_a_stream_raises_retryable(fake: AnthropicFake) -> None:
    fake.push(Reply(text="one two three", extra={"stream_error": "overloaded_error"}))
    got: list[str] = []
    with pytest.raises(llmcore.ResponseError) as info:
        for c in make(fake).stream(
            llmcore.ChatRequest(messages=[llmcore.Message("user", "x")], stream=True)
        ):
            got.append(c.content)
    assert info.value.retryable and info.value.status == 529
    assert got == ["one "], "the text before the error came through, and nothing claimed an end"


def test_529_overloaded_answer_is_retryable(fake: AnthropicFake) -> None:
    fake.push(Reply(status=529, error="Overloaded"))
    with pytest.raises(llmcore.ResponseError) as info:
        make(fake).chat(llmcore.ChatRequest(messages=[llmcore.Message("user", "x")]))
    assert info.value.retryable and info.value.status == 529


def test_400_quotes_the_apis_message(fake: AnthropicFake) -> None:
    fake.push(Reply(text="never used"))
    with pytest.raises(llmcore.BadRequestError, match="valid integer") as info:
        make(fake).chat(
            llmcore.ChatRequest(messages=[llmcore.Message("user", "x")], extra={"max_tokens": None})
        )
    assert info.value.status == 400 and not info.value.retryable
    assert "invalid_request_error" in str(info.value)


def test_a_base_url_with_v1_gets_the_anthropic_hint(fake: AnthropicFake) -> None:
    p = make(fake, base_url=fake.base_url + "/v1")
    with pytest.raises(llmcore.ModelNotFoundError) as info:
        p.chat(llmcore.ChatRequest(messages=[llmcore.Message("user", "x")]))
    assert "without /v1" in (info.value.hint or "")
    assert info.value.hint and info.value.hint.endswith(fake.base_url)


def test_models_lists_what_the_api_serves(fake: AnthropicFake) -> None:
    fake.models.append("claude-other")
    assert [m.name for m in make(fake).models()] == ["claude-fake-1", "claude-other"]
    assert fake.requests[-1].path == "/v1/models"


def test_failover_from_an_openai_server_to_anthropic(tmp_path: Path, fake: AnthropicFake) -> None:
    fake.push(Reply(text="answered by claude"))
    with OpenAIFake() as broken:
        broken.push(Reply(status=500, error="boom"))
        cfg = tmp_path / "llmcore.yaml"
        cfg.write_text(
            "providers:\n"
            f"  openai:\n    plugin: openai\n    api_key: sk-o\n    base_url: {broken.base_url}\n"
            "    models: [gpt-4o-mini]\n    priority: 1\n    retry: {max_attempts: 1}\n"
            f"  claude:\n    plugin: anthropic\n    api_key: sk-ant-t\n"
            f"    base_url: {fake.base_url}\n    models: [claude-fake-1]\n    priority: 2\n"
            "metrics:\n  enabled: false\n"
        )
        with llmcore.Client(load_config(cfg)) as client:
            r = client.chat("hi")
    assert r.content == "answered by claude" and r.provider == "claude"
    assert [(a.provider, a.ok, a.status) for a in r.attempts] == [
        ("openai", False, 500),
        ("claude", True, None),
    ]


def test_cli_chat_streams_from_claude(tmp_path: Path, fake: AnthropicFake) -> None:
    fake.push(Reply(text="streamed by claude", chunks=["streamed ", "by ", "claude"]))
    cfg = tmp_path / "llmcore.yaml"
    cfg.write_text(
        f"providers:\n  claude:\n    plugin: anthropic\n"
        f"    base_url: {fake.base_url}\n    models: [claude-fake-1]\n"
        "metrics:\n  enabled: false\n"
    )
    env = {**os.environ, "ANTHROPIC_API_KEY": "sk-ant-cli", "NO_COLOR": "1"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmcore",
            "--config",
            str(cfg),
            "chat",
            "--provider",
            "claude",
            "hello",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "streamed by claude\n"
    body = fake.message_requests()[-1].json
    assert body["stream"] is True and body["messages"] == [{"role": "user", "content": "hello"}]
    assert "sk-ant-cli" not in out.stdout + out.stderr
