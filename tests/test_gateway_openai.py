"""``llmcore serve`` through the official ``openai`` SDK: the chain is [a provider that
answers 500, the real llama.cpp server] for chat, and scripted fakes for tool calls.

Every answer must be accepted by the SDK (sync, async, streaming, tools); failover happens
before the first byte; a failure after it ends the stream with an error the SDK raises.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest
from gateway_support import GatewayProcess, provider_yaml
from llmcore.testing.fakes import OpenAIFake
from llmcore.testing.fakes.base import Reply

TOOL = {
    "type": "function",
    "function": {
        "name": "write_file",
        "description": "Write a file",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
            "required": ["path", "content"],
        },
    },
}
ASK = [{"role": "user", "content": "Say hello in one word."}]


def sdk(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_sync_chat_fails_over_from_500_to_llama(
    llama_gateway: GatewayProcess, upstreams: dict[str, OpenAIFake]
) -> None:
    before = len(upstreams["broken"].requests)
    raw = sdk(llama_gateway).chat.completions.with_raw_response.create(
        model="chat", messages=ASK, max_tokens=12, temperature=0
    )
    resp = raw.parse()
    assert raw.headers["x-llmcore-provider"] == "llama"
    assert len(upstreams["broken"].requests) > before  # the 500 was really tried first
    assert resp.model == "chat"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].finish_reason in ("stop", "length")
    assert resp.usage is not None and resp.usage.completion_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens


def test_stream_equals_plain_answer_and_carries_usage(llama_gateway: GatewayProcess) -> None:
    client = sdk(llama_gateway)
    ask = [{"role": "user", "content": "Name three colors."}]
    plain = client.chat.completions.create(
        model="chat", messages=ask, max_tokens=16, temperature=0, seed=1
    )
    chunks = list(
        client.chat.completions.create(
            model="chat",
            messages=ask,
            max_tokens=16,
            temperature=0,
            seed=1,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert len(finishes) == 1
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    assert len({c.id for c in chunks}) == 1


def test_async_client_concurrent_requests(llama_gateway: GatewayProcess) -> None:
    async def main() -> list[str]:
        client = openai.AsyncOpenAI(
            base_url=llama_gateway.url + "/v1", api_key="x", max_retries=0, timeout=120
        )
        async with client:
            outs = await asyncio.gather(
                *(
                    client.chat.completions.create(
                        model="chat", messages=ASK, max_tokens=4, temperature=0
                    )
                    for _ in range(3)
                )
            )
            stream = await client.chat.completions.create(
                model="chat", messages=ASK, max_tokens=4, temperature=0, stream=True
            )
            parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        return [o.choices[0].message.content or "" for o in outs] + ["".join(parts)]

    got = asyncio.run(main())
    assert len(set(got)) == 1  # greedy: the same answer every time, streamed or not


def test_tool_call_and_tool_result_round_trip(
    gateway: GatewayProcess, upstreams: dict[str, OpenAIFake]
) -> None:
    fake = upstreams["tools"]
    fake.push(
        Reply(
            text="",
            tool_calls=[
                {
                    "id": "call_7",
                    "name": "write_file",
                    "arguments": {"path": "a.txt", "content": "hi"},
                }
            ],
        )
    )
    client = sdk(gateway)
    resp = client.chat.completions.create(
        model="coder", messages=ASK, tools=[TOOL], tool_choice="auto"
    )
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.id == "call_7" and call.function.name == "write_file"
    assert json.loads(call.function.arguments) == {"path": "a.txt", "content": "hi"}
    sent = fake.requests[-1].json
    assert sent["tools"] == [TOOL] and sent["tool_choice"] == "auto"

    fake.push(Reply(text="Done."))
    follow = client.chat.completions.create(
        model="coder",
        tools=[TOOL],
        messages=[
            *ASK,
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": "call_7", "content": "written"},
        ],
    )
    assert follow.choices[0].message.content == "Done."
    msgs = fake.requests[-1].json["messages"]
    assert msgs[1]["tool_calls"][0]["id"] == "call_7"
    assert msgs[2] == {"role": "tool", "content": "written", "tool_call_id": "call_7"}


def test_streamed_tool_call(gateway: GatewayProcess, upstreams: dict[str, OpenAIFake]) -> None:
    upstreams["tools"].push(
        Reply(
            text="",
            tool_calls=[
                {
                    "id": "call_1",
                    "name": "write_file",
                    "arguments": {"path": "b.txt", "content": "x"},
                },
                {
                    "id": "call_2",
                    "name": "write_file",
                    "arguments": {"path": "c.txt", "content": "y"},
                },
            ],
        )
    )
    client = sdk(gateway)
    with client.chat.completions.stream(model="coder", messages=ASK, tools=[TOOL]) as s:
        for _ in s:
            pass
        final = s.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert [c.id for c in calls] == ["call_1", "call_2"]
    assert json.loads(calls[1].function.arguments) == {"path": "c.txt", "content": "y"}
    assert final.choices[0].finish_reason == "tool_calls"


def test_response_format_reaches_the_upstream(
    gateway: GatewayProcess, upstreams: dict[str, OpenAIFake]
) -> None:
    fmt = {
        "type": "json_schema",
        "json_schema": {
            "name": "x",
            "schema": {"type": "object", "properties": {"a": {"type": "integer"}}},
        },
    }
    upstreams["tools"].push(Reply(text='{"a": 1}'))
    resp = sdk(gateway).chat.completions.create(
        model="tools/fake-model", messages=ASK, response_format=fmt, presence_penalty=0.5
    )
    assert json.loads(resp.choices[0].message.content) == {"a": 1}
    sent = upstreams["tools"].requests[-1].json
    assert sent["response_format"] == fmt and sent["presence_penalty"] == 0.5
    assert sent["model"] == "fake-model"


def test_failure_after_first_byte_ends_stream_with_error(
    gateway: GatewayProcess, upstreams: dict[str, OpenAIFake]
) -> None:
    upstreams["tools"].push(Reply(text="one two three four", cut_after=2))
    client = sdk(gateway)
    seen: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for c in client.chat.completions.create(model="coder", messages=ASK, stream=True):
            if c.choices:
                seen.append(c.choices[0].delta.content or "")
    assert "".join(seen).startswith("one")  # the answer began, then the error ended it
    assert "interrupted" in str(info.value).lower() or "stream" in str(info.value).lower()


def test_streams_are_relayed_as_the_upstream_sent_them(
    gateway: GatewayProcess, upstreams: dict[str, OpenAIFake]
) -> None:
    # An OpenAI-compatible upstream's events reach an OpenAI client as they came (its id,
    # its model name); the usage event only when the client asked for it, though the
    # gateway always asks the upstream (for the metrics).
    fake = upstreams["tools"]
    for asked in (False, True):
        fake.push(Reply(text="one two three", model="fake-model-0613"))
        extra: dict[str, object] = {"stream_options": {"include_usage": True}} if asked else {}
        chunks = list(
            sdk(gateway).chat.completions.create(
                model="tools/fake-model",
                messages=ASK,
                stream=True,
                **extra,  # type: ignore[arg-type]
            )
        )
        assert fake.requests[-1].json["stream_options"] == {"include_usage": True}
        assert {c.model for c in chunks} == {"fake-model-0613"}
        assert len({c.id for c in chunks}) == 1
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
            "one two three"
        )
        usage = [c.usage for c in chunks if c.usage is not None]
        assert len(usage) == (1 if asked else 0)
        if asked:
            assert usage[0].completion_tokens == 3


def test_an_event_that_is_not_json_ends_a_relayed_stream_with_an_error(
    gateway: GatewayProcess, upstreams: dict[str, OpenAIFake]
) -> None:
    # the broken event arrives after the first byte (its own read): the client gets the
    # text before it, then an error event, never the broken line and never [DONE]
    upstreams["tools"].push(
        Reply(text="one two three four", chunk_delay=0.05, extra={"junk_after": 2})
    )
    seen: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for c in sdk(gateway).chat.completions.create(
            model="tools/fake-model", messages=ASK, stream=True
        ):
            if c.choices:
                seen.append(c.choices[0].delta.content or "")
    assert "".join(seen) == "one two "
    assert "not valid JSON" in str(info.value)


def test_completions_models_and_errors(
    gateway: GatewayProcess, upstreams: dict[str, OpenAIFake]
) -> None:
    client = sdk(gateway)
    upstreams["tools"].push(Reply(text=" blue"))
    comp = client.completions.create(
        model="tools/fake-model", prompt="The sky is", max_tokens=5, temperature=0
    )
    assert comp.choices[0].text == " blue" and comp.usage.completion_tokens > 0
    assert upstreams["tools"].requests[-1].json["prompt"] == "The sky is"
    emb = client.embeddings.create(model="tools/fake-model", input=["a", "b"])
    assert len(emb.data) == 2 and len(emb.data[0].embedding) == upstreams["tools"].embedding_dim
    ids = [m.id for m in client.models.list()]
    assert ids[0] == "coder" and "tools/fake-model" in ids
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope/model", messages=ASK)
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="coder", messages=ASK, n=2)
    assert bad.value.body["param"] == "n"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="coder", messages=[])
    status, body, _ = gateway.post("/v1/chat/completions", b"{not json")
    assert status == 400 and "not valid JSON" in body["error"]["message"]


def test_attempts_and_metrics_are_recorded(llama_gateway: GatewayProcess) -> None:
    sdk(llama_gateway).chat.completions.create(model="chat", messages=ASK, max_tokens=2)
    db = llama_gateway.dir / "metrics.db"
    deadline = time.monotonic() + 30
    rows: dict[str, dict] = {}
    while time.monotonic() < deadline:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "llmcore",
                "usage",
                "--by",
                "provider",
                "--json",
                "--config",
                str(llama_gateway.config_path),
            ],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
        rows = {r["provider"]: r for r in json.loads(out.stdout)["rows"]}
        if "llama" in rows and "broken" in rows:
            break
        time.sleep(0.5)
    assert Path(db).exists()
    assert rows["llama"]["requests"] >= 1
    assert rows["broken"]["failed_attempts"] >= 1
    assert "(every provider failed)" not in rows  # a failed chain entry is a failover
    status, _, text = llama_gateway.get("/metrics")
    assert status == 200
    assert (
        'llmcore_gateway_requests_total{endpoint="chat",key="",provider="llama",'
        'status="200"}' in text
    )
    assert 'llmcore_requests_total{model="gemma3",outcome="ok",provider="llama"}' in text


def test_health_and_readiness(gateway: GatewayProcess, tmp_path: Path) -> None:
    status, body, _ = gateway.get("/health")
    assert status == 200 and body["status"] == "ok"
    status, body, _ = gateway.get("/health/ready")
    assert status == 200 and body["providers"]["tools"] is True
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    config = (
        "providers:\n"
        + provider_yaml("down", dead, ["m"])
        + "routing: {state: memory}\nmetrics: {enabled: false}\n"
    )
    with GatewayProcess(tmp_path, config) as gw:
        status, body, _ = gw.get("/health/ready")
        assert status == 503 and body == {"status": "unavailable", "providers": {"down": False}}
        assert gw.get("/health")[0] == 200
