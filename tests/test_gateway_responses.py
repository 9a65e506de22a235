"""``/v1/responses`` (what Codex calls) through the official ``openai`` SDK: plain and
streamed events, function calls and their outputs, and 400s for what cannot be carried."""

from __future__ import annotations

import json

import openai
import pytest
from gateway_support import GatewayProcess
from llmcore.testing.fakes import OpenAIFake
from llmcore.testing.fakes.base import Reply

TOOL = {
    "type": "function",
    "name": "exec_command",
    "description": "Run a command",
    "parameters": {
        "type": "object",
        "properties": {"cmd": {"type": "string"}},
        "required": ["cmd"],
    },
}


def sdk(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_plain_response_through_llama(llama_gateway: GatewayProcess) -> None:
    r = sdk(llama_gateway).responses.create(
        model="chat", input="Say hi.", instructions="Be brief.", max_output_tokens=16
    )
    assert r.status in ("completed", "incomplete") and r.output_text
    assert r.usage is not None and r.usage.output_tokens > 0


def test_streamed_events_and_instructions(
    gateway: GatewayProcess, upstreams: dict[str, OpenAIFake]
) -> None:
    upstreams["tools"].push(Reply(text="Hello stream world"))
    kinds: list[str] = []
    with sdk(gateway).responses.stream(model="coder", input="hi", instructions="Be brief.") as s:
        for event in s:
            kinds.append(event.type)
        final = s.get_final_response()
    assert final.output_text == "Hello stream world"
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds
    assert final.usage is not None and final.usage.output_tokens > 0
    sent = upstreams["tools"].requests[-1].json
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]


def test_function_call_and_output_round_trip(
    gateway: GatewayProcess, upstreams: dict[str, OpenAIFake]
) -> None:
    fake = upstreams["tools"]
    fake.push(
        Reply(
            text="",
            tool_calls=[
                {"id": "call_5", "name": "exec_command", "arguments": {"cmd": "echo hi > a.txt"}}
            ],
        )
    )
    client = sdk(gateway)
    r = client.responses.create(model="coder", input="write a.txt", tools=[TOOL])
    calls = [o for o in r.output if o.type == "function_call"]
    assert calls[0].call_id == "call_5" and calls[0].name == "exec_command"
    assert json.loads(calls[0].arguments) == {"cmd": "echo hi > a.txt"}
    assert fake.requests[-1].json["tools"][0]["function"]["name"] == "exec_command"

    fake.push(
        Reply(
            text="",
            tool_calls=[
                {"id": "call_6", "name": "exec_command", "arguments": {"cmd": "cat a.txt"}}
            ],
        )
    )
    with client.responses.stream(
        model="coder",
        tools=[TOOL],
        input=[
            {"role": "user", "content": "write a.txt"},
            {
                "type": "function_call",
                "call_id": "call_5",
                "name": "exec_command",
                "arguments": calls[0].arguments,
            },
            {"type": "function_call_output", "call_id": "call_5", "output": "done"},
        ],
    ) as s:
        final = s.get_final_response()
    streamed = [o for o in final.output if o.type == "function_call"]
    assert streamed[0].call_id == "call_6"
    assert json.loads(streamed[0].arguments) == {"cmd": "cat a.txt"}
    msgs = fake.requests[-1].json["messages"]
    assert msgs[1]["tool_calls"][0]["id"] == "call_5"
    assert msgs[2] == {"role": "tool", "content": "done", "tool_call_id": "call_5"}


def test_what_cannot_be_carried_is_a_400(gateway: GatewayProcess) -> None:
    client = sdk(gateway)
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model="coder", input="hi", previous_response_id="resp_1")
    assert "previous_response_id" in str(bad.value)
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model="coder", input=[{"type": "item_reference", "id": "x"}])
    assert "item_reference" in str(bad.value)


def test_hosted_tools_are_left_out_and_named(
    gateway: GatewayProcess, upstreams: dict[str, OpenAIFake]
) -> None:
    upstreams["tools"].push(Reply(text="ok"))
    raw = sdk(gateway).responses.with_raw_response.create(
        model="coder", input="hi", tools=[TOOL, {"type": "web_search"}]
    )
    assert raw.parse().output_text == "ok"
    assert raw.headers["x-llmcore-dropped-tools"] == "web_search"
    sent = upstreams["tools"].requests[-1].json["tools"]
    assert [t["function"]["name"] for t in sent] == ["exec_command"]


def test_failure_mid_stream_is_response_failed(
    gateway: GatewayProcess, upstreams: dict[str, OpenAIFake]
) -> None:
    upstreams["tools"].push(Reply(text="one two three four", cut_after=2))
    kinds = [e.type for e in sdk(gateway).responses.create(model="coder", input="hi", stream=True)]
    assert kinds[-1] == "response.failed"
    assert "response.completed" not in kinds and "response.output_text.delta" in kinds
