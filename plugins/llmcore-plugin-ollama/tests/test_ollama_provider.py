"""What the Ollama plugin adds beyond the shared contract: thinking, tools, format, options,
generate, embed, model facts, pull and auto_pull, "not running", cloud keys, the Client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import llmcore
import llmcore_ollama
import pytest
from llmcore import (
    AuthenticationError,
    ChatRequest,
    ConfigError,
    Message,
    ModelNotFoundError,
    ProviderConfig,
    ProviderConnectionError,
    ResponseError,
)
from llmcore.config import parse_config
from llmcore.testing.contract import dead_url
from llmcore.testing.fakes import OllamaFake, Reply
from llmcore_ollama import OllamaProvider

Make = Callable[..., OllamaProvider]


@pytest.fixture
def make(ollama_fake: OllamaFake) -> Iterator[Make]:
    made: list[OllamaProvider] = []

    def build(
        base_url: str | None = None, models: list[str] | None = None, **options: Any
    ) -> OllamaProvider:
        cfg = ProviderConfig(
            name="local",
            plugin="ollama",
            base_url=base_url or ollama_fake.url,
            models=models or ["llama3.2"],
            options=options,
        )
        p = OllamaProvider(cfg)
        made.append(p)
        return p

    yield build
    for p in made:
        p.close()


def ask(text: str = "hi", **kw: Any) -> ChatRequest:
    return ChatRequest(messages=[Message("user", text)], **kw)


def body_of(fake: OllamaFake, path: str) -> dict[str, Any]:
    req = [r for r in fake.requests if r.path == path][-1]
    data: dict[str, Any] = req.json
    return data


# -- thinking, tools, format, options -------------------------------------------------------
def test_thinking_is_kept_apart_from_the_answer(ollama_fake: OllamaFake, make: Make) -> None:
    ollama_fake.push(
        Reply(text="The answer is 4.", thinking="2 plus 2 is 4"),
        Reply(text="The answer is 4.", thinking="2 plus 2 is 4"),
    )
    p = make(models=["qwen3:0.6b"], think=True)
    resp = p.chat(ask("2+2?"))
    assert resp.content == "The answer is 4." and resp.thinking == "2 plus 2 is 4"
    assert body_of(ollama_fake, "/api/chat")["think"] is True
    chunks = list(p.stream(ask("2+2?")))
    assert "".join(c.content for c in chunks) == "The answer is 4."
    assert "".join(c.thinking for c in chunks) == "2 plus 2 is 4"
    assert not any(c.thinking and c.content for c in chunks)


def test_think_is_not_sent_unless_configured(ollama_fake: OllamaFake, make: Make) -> None:
    ollama_fake.push(Reply(text="ok", thinking="hidden"))
    resp = make(models=["qwen3:0.6b"]).chat(ask())
    assert "think" not in body_of(ollama_fake, "/api/chat")
    assert resp.thinking is None


def test_tools_go_out_and_tool_calls_come_back_openai_shaped(
    ollama_fake: OllamaFake, make: Make
) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    call = {"name": "get_weather", "arguments": {"city": "Oslo"}}
    ollama_fake.push(Reply(text="", tool_calls=[call]), Reply(text="", tool_calls=[call]))
    p = make()
    resp = p.chat(ask("weather?", tools=[tool]))
    assert body_of(ollama_fake, "/api/chat")["tools"] == [tool]
    assert resp.finish_reason == "tool_calls"
    assert resp.tool_calls is not None
    fn = resp.tool_calls[0]["function"]
    assert fn["name"] == "get_weather" and json.loads(fn["arguments"]) == {"city": "Oslo"}
    chunks = list(p.stream(ask("weather?", tools=[tool])))
    assert chunks[-1].finish_reason == "tool_calls"
    assert [c["function"]["name"] for ch in chunks for c in ch.tool_calls or []] == ["get_weather"]


def test_tool_results_are_sent_in_ollamas_shape(ollama_fake: OllamaFake, make: Make) -> None:
    ollama_fake.push(Reply(text="It is sunny."))
    call = {
        "id": "call_0",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
    }
    make().chat(
        ChatRequest(
            messages=[
                Message("user", "weather?"),
                Message("assistant", "", tool_calls=[call]),
                Message("tool", "sunny", name="get_weather", tool_call_id="call_0"),
            ]
        )
    )
    sent = body_of(ollama_fake, "/api/chat")["messages"]
    assert sent[1]["tool_calls"] == [
        {"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}
    ]
    assert sent[2] == {"role": "tool", "content": "sunny", "tool_name": "get_weather"}


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        ({"type": "json_object"}, "json"),
        (
            {
                "type": "json_schema",
                "json_schema": {
                    "name": "x",
                    "schema": {"type": "object", "properties": {"a": {"type": "integer"}}},
                },
            },
            {"type": "object", "properties": {"a": {"type": "integer"}}},
        ),
        (
            {"type": "object", "properties": {"b": {"type": "string"}}},
            {"type": "object", "properties": {"b": {"type": "string"}}},
        ),
    ],
)
def test_response_format_becomes_format(
    ollama_fake: OllamaFake, make: Make, response_format: dict[str, Any], expected: Any
) -> None:
    ollama_fake.push(Reply(text='{"a": 1}'))
    make().chat(ask(response_format=response_format))
    assert body_of(ollama_fake, "/api/chat")["format"] == expected


def test_config_options_keep_alive_and_request_values(ollama_fake: OllamaFake, make: Make) -> None:
    ollama_fake.push(Reply(text="ok"))
    p = make(keep_alive="10m", options={"num_ctx": 8192, "temperature": 0.9})
    p.chat(ask(temperature=0.1, max_tokens=5, extra={"options": {"top_k": 20}}))
    body = body_of(ollama_fake, "/api/chat")
    assert body["keep_alive"] == "10m"
    assert body["options"] == {"num_ctx": 8192, "temperature": 0.1, "num_predict": 5, "top_k": 20}


def test_bad_keep_alive_is_a_config_error(make: Make) -> None:
    with pytest.raises(ConfigError) as info:
        make(keep_alive=[5])
    assert "keep_alive" in str(info.value) and info.value.hint


def test_error_inside_the_stream_is_raised_not_printed(ollama_fake: OllamaFake, make: Make) -> None:
    ollama_fake.push(
        Reply(
            text="partial answer here",
            extra={"stream_error": "llama runner process has terminated", "stream_error_after": 2},
        )
    )
    got: list[str] = []
    with pytest.raises(ResponseError) as info:
        for c in make().stream(ask()):
            got.append(c.content)
    assert "runner process has terminated" in str(info.value)
    assert "".join(got) == "partial answer "  # the error text never became content


def test_async_stream_error_is_raised(ollama_fake: OllamaFake, make: Make) -> None:
    ollama_fake.push(Reply(text="a b c", extra={"stream_error": "out of memory"}))
    p = make()

    async def run() -> None:
        try:
            async for _ in p.astream(ask()):
                pass
        finally:
            await p.aclose()

    with pytest.raises(ResponseError, match="out of memory"):
        asyncio.run(run())


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b"{}", "no message"),
        (b'{"error": "model runner crashed"}', "model runner crashed"),
        (b'{"model": "x", "message": "not an object", "done": true}', "no message"),
    ],
)
def test_a_200_that_is_not_an_answer_is_an_error(
    ollama_fake: OllamaFake, make: Make, body: bytes, said: str, mode: str
) -> None:
    ollama_fake.push(Reply(body=body))
    p = make()

    async def run() -> Any:
        try:
            return await p.achat(ask())
        finally:
            await p.aclose()

    with pytest.raises(ResponseError, match=said):
        p.chat(ask()) if mode == "sync" else asyncio.run(run())


def test_an_absurd_token_count_keeps_the_answer(ollama_fake: OllamaFake, make: Make) -> None:
    ollama_fake.push(
        Reply(
            body=b'{"model": "m", "message": {"role": "assistant", '
            b'"content": "whole answer"}, "done": true, '
            b'"prompt_eval_count": 1e999, "eval_count": -3}'
        )
    )
    resp = make().chat(ask())
    assert resp.content == "whole answer"
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == (0, 0)


# -- generate and embed ------------------------------------------------------------------------
def test_generate_is_a_raw_completion_of_the_prompt(ollama_fake: OllamaFake, make: Make) -> None:
    ollama_fake.push(Reply(text=" jumped over the dog", usage=(5, 4)))
    req = ask("ignored chat text", max_tokens=8, extra={"prompt": "The quick fox"})
    resp = make().generate(req)
    body = body_of(ollama_fake, "/api/generate")
    assert body["prompt"] == "The quick fox" and body["raw"] is True
    assert body["options"] == {"num_predict": 8} and body["stream"] is False
    assert resp.content == " jumped over the dog"
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == (5, 4)


def test_embed_sync_and_async(ollama_fake: OllamaFake, make: Make) -> None:
    p = make(embed_model="nomic-embed-text")
    out = p.embed(["alpha", "beta"])
    assert len(out.vectors) == 2 and len(out.vectors[0]) == 8
    assert out.model == "nomic-embed-text" and out.usage.input_tokens == 2
    assert body_of(ollama_fake, "/api/embed")["input"] == ["alpha", "beta"]

    async def run() -> Any:
        try:
            return await p.aembed(["alpha"])
        finally:
            await p.aclose()

    assert asyncio.run(run()).vectors[0] == out.vectors[0]


# -- models, health ----------------------------------------------------------------------------
def test_models_carry_context_capabilities_size_quantization(
    ollama_fake: OllamaFake, make: Make
) -> None:
    ollama_fake.push(Reply(text="warm up"))
    p = make()
    p.chat(ask())  # loads llama3.2 (shows in /api/ps)
    models = {m.name: m for m in p.models()}
    qwen = models["qwen3:0.6b"]
    assert qwen.context_length == 40960
    assert qwen.capabilities == ["completion", "tools", "thinking"]
    assert (qwen.parameter_size, qwen.quantization, qwen.family) == ("751.63M", "Q4_K_M", "qwen3")
    assert models["nomic-embed-text:latest"].capabilities == ["embedding"]
    assert "vision" in models["llava:latest"].capabilities
    assert models["llama3.2:latest"].loaded is True and qwen.loaded is False
    assert [m.name for m in p.running()] == ["llama3.2:latest"]


def test_health_reports_the_version(make: Make) -> None:
    h = make().health()
    assert h.ok and h.version == "0.12.6"


# -- not running, not pulled, auto_pull ------------------------------------------------------
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_not_running_says_so_and_how_to_start_it(
    ollama_fake: OllamaFake, make: Make, mode: str
) -> None:
    url = dead_url(ollama_fake.url)
    p = make(base_url=url)
    with pytest.raises(ProviderConnectionError) as info:
        if mode == "sync":
            p.chat(ask())
        else:

            async def run() -> Any:
                try:
                    return await p.achat(ask())
                finally:
                    await p.aclose()

            asyncio.run(run())
    assert f"Ollama is not running at {url}" in str(info.value)
    assert info.value.hint and "ollama serve" in info.value.hint
    health = p.health()
    assert not health.ok and health.hint and "ollama serve" in health.hint


def test_a_model_not_pulled_says_run_ollama_pull(make: Make) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        make(models=["gemma3:270m"]).chat(ask())
    assert info.value.hint == "Run: ollama pull gemma3:270m"
    assert "gemma3:270m" in str(info.value) and info.value.status == 404


def test_pull_reports_progress(ollama_fake: OllamaFake, make: Make) -> None:
    seen: list[tuple[str, int | None, int | None]] = []
    make().pull("gemma3:270m", lambda s, done, total: seen.append((s, done, total)))
    assert seen[0][0] == "pulling manifest" and seen[-1][0] == "success"
    sizes = [done for _, done, total in seen if total]
    assert sizes == sorted(sizes) and sizes[-1] == 291554930
    assert "gemma3:270m" in ollama_fake.catalog


def test_pull_of_an_unknown_name_is_model_not_found(make: Make) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        make().pull("no-such-model-anywhere")
    assert "ollama.com/library" in (info.value.hint or "")


def test_auto_pull_pulls_then_answers(ollama_fake: OllamaFake, make: Make) -> None:
    # Every request takes a reply: the 404 chat, the pull, then the retried chat.
    ollama_fake.push(Reply(), Reply(), Reply(text="fresh model here"))
    p = make(models=["gemma3:270m"], auto_pull=True)
    statuses: list[str] = []
    p.pull_progress = lambda s, done, total: statuses.append(s)
    resp = p.chat(ask())
    assert resp.content == "fresh model here"
    assert [r.path for r in ollama_fake.requests] == ["/api/chat", "/api/pull", "/api/chat"]
    assert statuses[-1] == "success"


def test_auto_pull_on_stream_and_async(ollama_fake: OllamaFake, make: Make) -> None:
    ollama_fake.push(Reply(), Reply(), Reply(text="streamed after pull"))
    p = make(models=["gemma3:270m"], auto_pull=True)
    assert "".join(c.content for c in p.stream(ask())) == "streamed after pull"
    del ollama_fake.catalog["gemma3:270m"]
    ollama_fake.push(Reply(), Reply(), Reply(text="async after pull"))

    async def run() -> Any:
        try:
            return await p.achat(ask())
        finally:
            await p.aclose()

    assert asyncio.run(run()).content == "async after pull"
    assert [r.path for r in ollama_fake.requests].count("/api/pull") == 2


# -- cloud -------------------------------------------------------------------------------------
def test_cloud_sends_the_bearer_key_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_API_KEY", "cloud-secret-0042")
    with OllamaFake(require_key="cloud-secret-0042") as fake:
        p = OllamaProvider(
            ProviderConfig(
                name="cloud",
                plugin="ollama",
                base_url=fake.url,
                models=["llama3.2"],
                options={"cloud": True},
            )
        )
        fake.push(Reply(text="from the cloud"))
        assert p.chat(ask()).content == "from the cloud"
        assert fake.requests[-1].headers["Authorization"] == "Bearer cloud-secret-0042"
        p.close()


def test_cloud_base_url_is_detected_and_a_missing_key_is_explained(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    p = OllamaProvider(
        ProviderConfig(
            name="cloud", plugin="ollama", base_url="https://ollama.com", models=["gpt-oss:120b"]
        )
    )
    assert p.cloud
    with pytest.raises(AuthenticationError) as info:
        p.chat(ask())
    assert "OLLAMA_API_KEY" in (info.value.hint or "")


def test_cloud_wrong_key_is_an_auth_error_without_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_OLLAMA_KEY", "wrong-key-98765")
    with OllamaFake(require_key="right-key") as fake:
        p = OllamaProvider(
            ProviderConfig(
                name="cloud",
                plugin="ollama",
                base_url=fake.url,
                api_key_env="MY_OLLAMA_KEY",
                models=["llama3.2"],
                options={"cloud": True},
            )
        )
        with pytest.raises(AuthenticationError) as info:
            p.chat(ask())
        assert info.value.status == 401 and "MY_OLLAMA_KEY" in (info.value.hint or "")
        assert "wrong-key-98765" not in str(info.value) + repr(p)
        p.close()


def test_cloud_does_not_auto_pull(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_API_KEY", "k-123456")
    with OllamaFake(require_key="k-123456") as fake:
        p = OllamaProvider(
            ProviderConfig(
                name="cloud",
                plugin="ollama",
                base_url=fake.url,
                models=["gemma3:270m"],
                options={"cloud": True, "auto_pull": True},
            )
        )
        with pytest.raises(ModelNotFoundError) as info:
            p.chat(ask())
        assert "/api/pull" not in [r.path for r in fake.requests]
        assert "ollama.com/search" in (info.value.hint or "")
        p.close()


# -- through the public Client ---------------------------------------------------------------
def test_client_chat_stream_generate_embed_models(
    ollama_fake: OllamaFake, plugin_manager: Any
) -> None:
    plugin_manager.register(llmcore_ollama)
    config = parse_config(f"""
providers:
  local:
    plugin: ollama
    base_url: {ollama_fake.url}
    models: [llama3.2]
    embed_model: nomic-embed-text
    keep_alive: 5m
""")
    client = llmcore.Client(config, plugin_manager=plugin_manager)
    try:
        ollama_fake.push(
            Reply(text="client says hi", usage=(3, 3)),
            Reply(text="a b c"),
            Reply(text="completion"),
        )
        resp = client.chat("hello")
        assert (resp.content, resp.provider) == ("client says hi", "local")
        assert "".join(c.content for c in client.stream("hello")) == "a b c"
        assert client.generate("Once").content == "completion"
        assert len(client.embed(["x", "y"]).vectors) == 2
        assert "qwen3:0.6b" in [m.name for m in client.models()]
    finally:
        client.runtime.close()


# -- configuration -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "line", ["options: {num_ctx: 8192, top_k: 20}", "num_ctx: 8192\n    top_k: 20"]
)
def test_yaml_model_options_nested_or_flat(ollama_fake: OllamaFake, line: str) -> None:
    config = parse_config(f"""
providers:
  local:
    plugin: ollama
    base_url: {ollama_fake.url}
    models: [llama3.2]
    {line}
""")
    p = OllamaProvider(config.providers["local"])
    ollama_fake.push(Reply(text="ok"))
    p.chat(ask())
    assert body_of(ollama_fake, "/api/chat")["options"] == {"num_ctx": 8192, "top_k": 20}
    p.close()


def test_an_unknown_key_is_a_config_error_naming_it() -> None:
    config = parse_config("""
providers:
  local: {plugin: ollama, auto_pul: true}
""")
    with pytest.raises(ConfigError) as info:
        OllamaProvider(config.providers["local"])
    assert "providers.local.auto_pul" in str(info.value)
    assert "auto_pull" in (info.value.hint or "")


# -- the CLI -----------------------------------------------------------------------------------
def test_cli_chat_streams_and_models_pull(
    ollama_fake: OllamaFake, llmcore_config: Callable[[str], Any]
) -> None:
    from click.testing import CliRunner
    from llmcore.cli import cli

    llmcore_config(f"""
providers:
  local:
    plugin: ollama
    base_url: {ollama_fake.url}
    models: [llama3.2]
""")
    runner = CliRunner()
    ollama_fake.push(Reply(text="streamed from the fake Ollama"))
    out = runner.invoke(cli, ["chat", "hello", "--provider", "local"])
    assert out.exit_code == 0, out.output
    assert "streamed from the fake Ollama" in out.output
    assert body_of(ollama_fake, "/api/chat")["stream"] is True
    ollama_fake.push(Reply(text="json answer", usage=(2, 2)))
    out = runner.invoke(cli, ["chat", "hello", "--json"])
    data = json.loads(out.output)
    assert (data["content"], data["provider"]) == ("json answer", "local")
    assert data["usage"]["output_tokens"] == 2
    out = runner.invoke(cli, ["models", "pull", "gemma3:270m", "--provider", "local"])
    assert out.exit_code == 0, out.output
    assert "gemma3:270m" in ollama_fake.catalog
    out = runner.invoke(cli, ["models", "--provider", "local", "--json"])
    assert out.exit_code == 0, out.output
    listed = {m["name"]: m for m in json.loads(out.output)}
    assert listed["qwen3:0.6b"]["context_length"] == 40960
    assert "gemma3:270m" in listed


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_stream_that_stalls_is_a_timeout(ollama_fake: OllamaFake, mode: str) -> None:
    from llmcore import ProviderTimeoutError
    from llmcore.config import Timeouts

    ollama_fake.push(Reply(text="first then silence", chunk_delay=1.0))
    p = OllamaProvider(
        ProviderConfig(
            name="local",
            plugin="ollama",
            base_url=ollama_fake.url,
            models=["llama3.2"],
            timeout=Timeouts(connect=2, read=0.3, write=2, pool=2),
        )
    )
    got: list[str] = []

    async def run() -> None:
        try:
            async for c in p.astream(ask()):
                got.append(c.content)
        finally:
            await p.aclose()

    with pytest.raises(ProviderTimeoutError) as info:
        if mode == "sync":
            for c in p.stream(ask()):
                got.append(c.content)
        else:
            asyncio.run(run())
    assert got == ["first "]  # what arrived before the stall, nothing invented after it
    assert "timed out" in str(info.value) and info.value.hint
    p.close()
