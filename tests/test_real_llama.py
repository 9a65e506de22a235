"""The OpenAI-compatible path against a real llama.cpp server (Gemma-3-270M from PyPI).

The same checks run for the core ``openai`` provider type and for the vLLM and LM Studio
plugins pointed at the server, always through the public ``llmcore.Client`` API with a
config file, as a user would. The model is a small *base* model: its chat answers are not
sensible, so the tests assert on structure (content, usage, finish reason, chunks), never on
what it says. Greedy decoding (temperature 0, fixed seed) makes a streamed answer comparable
with the same request answered whole.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator

import llmcore
import pytest
from llmcore.config import parse_config
from llmcore.errors import AllProvidersFailed, ModelNotFoundError
from real_llama import MODEL_ALIAS

pytestmark = pytest.mark.real_server

MAX_TOKENS = 8
GREEDY = {"temperature": 0.0, "seed": 7, "max_tokens": MAX_TOKENS}
PROMPT = "Write one short sentence about the sea."

# provider type -> the YAML body of one provider named "llama" of that type
TYPES = ("openai", "vllm", "lmstudio")


def config_text(plugin: str, base_url: str, models: str = f"[{MODEL_ALIAS}]") -> str:
    return f"""
providers:
  llama:
    plugin: {plugin}
    base_url: {base_url}/v1
    api_key: sk-test-not-a-real-key
    models: {models}
    timeout: {{connect: 5, read: 120, write: 30, pool: 10}}
    retry: {{max_attempts: 1}}
agents: {{}}
routing: {{state: memory}}
metrics: {{enabled: false}}
"""


@pytest.fixture(params=TYPES)
def plugin(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(llama_server: str, plugin: str) -> Iterator[llmcore.Client]:
    with llmcore.Client(parse_config(config_text(plugin, llama_server))) as c:
        yield c


def test_model_list_shows_the_served_model(client: llmcore.Client) -> None:
    models = client.models(provider="llama")
    names = [m.name for m in models]
    assert MODEL_ALIAS in names, names
    assert all(m.provider == "llama" for m in models)


def test_text_completion(client: llmcore.Client) -> None:
    resp = client.generate("The capital of France is", **GREEDY)
    assert isinstance(resp.content, str) and resp.content.strip()
    assert resp.provider == "llama"
    assert resp.usage.input_tokens > 0
    assert 0 < resp.usage.output_tokens <= MAX_TOKENS
    assert resp.finish_reason in ("stop", "length")


def test_chat_whole_answer(client: llmcore.Client) -> None:
    resp = client.chat(PROMPT, **GREEDY)
    assert isinstance(resp.content, str)
    assert resp.provider == "llama"
    assert resp.model == MODEL_ALIAS
    assert resp.usage.input_tokens > 0
    assert 0 < resp.usage.output_tokens <= MAX_TOKENS
    assert resp.finish_reason in ("stop", "length")
    assert resp.latency_s > 0
    # one attempt, and it succeeded
    assert [(a.provider, a.ok) for a in resp.attempts] == [("llama", True)]


def test_chat_with_system_message_and_stop(client: llmcore.Client) -> None:
    resp = client.chat(PROMPT, system="Answer in English.", stop=["\n"], **GREEDY)
    assert "\n" not in resp.content
    assert resp.usage.input_tokens > 0


def test_stream_concatenates_to_the_whole_answer_and_counts_usage(
    client: llmcore.Client,
) -> None:
    whole = client.chat(PROMPT, **GREEDY)
    chunks = list(client.stream(PROMPT, **GREEDY))
    text = "".join(c.content for c in chunks)
    # greedy decoding: the streamed text is the same answer, cut into pieces
    assert text == whole.content
    assert sum(1 for c in chunks if c.content) >= 2 or len(whole.content) <= 2
    assert chunks[-1].finish_reason in ("stop", "length") or any(
        c.finish_reason in ("stop", "length") for c in chunks
    )
    # llama.cpp sends no usage block in a stream: llmcore must count it itself
    usages = [c.usage for c in chunks if c.usage is not None]
    assert usages, "no chunk carried usage"
    last = usages[-1]
    assert 0 < last.output_tokens <= MAX_TOKENS + 1
    assert all(c.provider in (None, "llama") for c in chunks)


def test_async_chat_and_stream(llama_server: str, plugin: str) -> None:
    async def main() -> tuple[str, str]:
        async with llmcore.AsyncClient(parse_config(config_text(plugin, llama_server))) as c:
            whole = await c.chat(PROMPT, **GREEDY)
            parts = [ch.content async for ch in c.stream(PROMPT, **GREEDY)]
            assert whole.usage.output_tokens > 0
            return whole.content, "".join(parts)

    whole, streamed = asyncio.run(main())
    assert streamed == whole


def test_unknown_model_is_a_clear_error(llama_server: str, plugin: str) -> None:
    """llama.cpp answers *any* model name with its one model (see the next test), so the
    server never reports an unknown model: llmcore refuses a model the config does not list,
    and the error names the model."""
    cfg = parse_config(config_text(plugin, llama_server))
    with llmcore.Client(cfg) as c, pytest.raises((ModelNotFoundError, AllProvidersFailed)) as info:
        c.chat("hi", model="no-such-model", max_tokens=2)
    assert "no-such-model" in str(info.value)


def test_llama_cpp_serves_any_model_name(llama_server: str) -> None:
    """The fact behind the previous test, checked on the real server: a request for an unknown
    model is answered (200) by the loaded model rather than refused."""
    body = json.dumps(
        {"model": "no-such-model", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    req = urllib.request.Request(
        f"{llama_server}/v1/chat/completions",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status == 200
        assert json.load(resp)["object"] == "chat.completion"


def test_wrong_path_is_a_provider_error(llama_server: str, plugin: str) -> None:
    """A base URL without ``/v1`` reaches llama.cpp's 404 page: a typed error, not a crash."""
    text = config_text(plugin, llama_server).replace(f"{llama_server}/v1", f"{llama_server}/v9")
    with llmcore.Client(parse_config(text)) as c, pytest.raises(AllProvidersFailed) as info:
        c.chat("hi", max_tokens=2)
    attempt = info.value.attempts[0]
    assert attempt.provider == "llama" and not attempt.ok
    assert attempt.status == 404
    assert attempt.error_type == "ModelNotFoundError"
