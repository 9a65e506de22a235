"""``schema=``: the provider's native feature is asked for, the answer parsed and validated,
an answer that does not fit asked again with the error, and a last failure is clear."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pydantic
import pytest
from anthropic_shape import check_request
from llmcore import AsyncClient, Client
from llmcore.config import parse_config
from llmcore.errors import AllProvidersFailed
from llmcore.structured import NATIVE, StructuredOutputError, for_provider, json_schema
from llmcore.testing.fakes import AnthropicFake, OpenAIFake, Reply
from llmcore.testing.fakes.ollama import OllamaFake
from llmcore.types import ChatRequest, Message

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


class Person(pydantic.BaseModel):
    name: str
    age: int


@dataclasses.dataclass
class Pet:
    name: str
    legs: int
    tags: list[str] = dataclasses.field(default_factory=list)


def cfg(plugin: str, url: str, model: str = "m") -> str:
    return (
        f"providers:\n  p:\n    plugin: {plugin}\n    base_url: {url}\n"
        f"    models: [{model}]\nmetrics: {{enabled: false}}\nrouting: {{state: memory}}\n"
    )


def test_openai_gets_response_format_and_a_pydantic_object_comes_back() -> None:
    with OpenAIFake() as fake, Client(parse_config(cfg("openai", fake.base_url))) as c:
        fake.push(Reply(text='{"name": "Ada", "age": 36}'))
        got = c.chat("who?", schema=Person)
    assert got == Person(name="Ada", age=36)
    rf = fake.requests[0].json["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["schema"] == Person.model_json_schema()


def test_ollama_gets_format(ollama_fake: OllamaFake) -> None:
    model = next(iter(ollama_fake.catalog))
    with Client(parse_config(cfg("ollama", ollama_fake.url, model))) as c:
        ollama_fake.push(Reply(text='```json\n{"name": "Rex", "legs": 4}\n```'))
        got = c.chat("a dog", schema=Pet)
    assert got == Pet(name="Rex", legs=4)
    assert ollama_fake.requests[-1].json["format"] == json_schema(Pet)


def test_an_answer_that_does_not_fit_is_retried_with_the_error() -> None:
    with OpenAIFake() as fake, Client(parse_config(cfg("openai", fake.base_url))) as c:
        fake.push(Reply(text='{"name": "Ada"}'), Reply(text='{"name": "Ada", "age": 36}'))
        got = c.chat("who?", schema=SCHEMA)
    assert got == {"name": "Ada", "age": 36}
    second = fake.requests[1].json["messages"]
    assert second[1] == {"role": "assistant", "content": '{"name": "Ada"}'}
    assert "'age' is a required property" in second[2]["content"]


def test_a_last_failure_is_clear_and_carries_the_answer() -> None:
    with OpenAIFake() as fake, Client(parse_config(cfg("openai", fake.base_url))) as c:
        fake.push(*[Reply(text="not json at all")] * 2)
        with pytest.raises(StructuredOutputError) as info:
            c.chat("who?", schema=SCHEMA, schema_retries=1)
    assert len(fake.requests) == 2
    err = info.value
    assert err.last_answer == "not json at all"
    assert "not valid JSON" in str(err) and "after 2 tries" in str(err)


def test_async_schema() -> None:
    async def run() -> object:
        with OpenAIFake() as fake:
            async with AsyncClient(parse_config(cfg("openai", fake.base_url))) as c:
                fake.push(Reply(text='{"name": "Tom", "legs": 4, "tags": ["cat"]}'))
                return await c.chat("a cat", schema=Pet)

    import asyncio

    assert asyncio.run(run()) == Pet(name="Tom", legs=4, tags=["cat"])


def test_anthropic_is_asked_with_a_forced_tool_call() -> None:
    req = ChatRequest(
        messages=[Message("user", "x")],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": SCHEMA},
        },
    )
    shaped = for_provider(req, "anthropic")
    assert "anthropic" in NATIVE
    assert shaped.response_format is None
    assert shaped.tools == [
        {
            "type": "function",
            "function": {
                "name": "answer",
                "description": "Give the answer in this structure.",
                "parameters": SCHEMA,
            },
        }
    ]
    assert shaped.tool_choice == {"type": "function", "function": {"name": "answer"}}
    assert req.tools is None  # the caller's request is left alone
    assert for_provider(req, "openai") is req


def test_chat_schema_cli(tmp_path: Path) -> None:
    with OpenAIFake() as fake:
        path = tmp_path / "llmcore.yaml"
        path.write_text(cfg("openai", fake.base_url))
        (tmp_path / "s.json").write_text(json.dumps(SCHEMA))
        fake.push(Reply(text='{"name": "Ada", "age": 36}'), Reply(text='{"name": "B", "age": 1}'))
        env = {**os.environ, "NO_COLOR": "1"}
        run = [sys.executable, "-m", "llmcore", "--config", str(path), "chat"]
        out = subprocess.run(
            [*run, "--schema", str(tmp_path / "s.json"), "who"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == {"name": "Ada", "age": 36}
        out = subprocess.run(
            [*run, "--schema", json.dumps(SCHEMA), "who"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert json.loads(out.stdout) == {"name": "B", "age": 1}
        bad = subprocess.run(
            [*run, "--json", "--schema", '{"type": 12}', "who"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert bad.returncode == 2
        assert "not a valid JSON Schema" in json.loads(bad.stdout)["error"]


@pytest.mark.parametrize("status", [422, 500])
def test_a_server_refusing_json_schema_is_asked_in_json_object_shape(status: int) -> None:
    # llama-cpp-python's server answers this validation error with a 500 naming the field
    text = cfg("openai", "URL").replace("models: [m]", "models: [m]\n    retry: {max_attempts: 1}")
    with OpenAIFake() as fake, Client(parse_config(text.replace("URL", fake.base_url))) as c:
        fake.push(
            Reply(
                status=status,
                error="1 validation error: ('body', 'response_format', "
                "'type'): Input should be 'text' or 'json_object'",
            ),
            Reply(text='{"name": "Ada", "age": 36}'),
        )
        assert c.chat("who?", schema=SCHEMA) == {"name": "Ada", "age": 36}
    assert fake.requests[1].json["response_format"] == {"type": "json_object", "schema": SCHEMA}


def test_other_server_errors_are_not_retried_in_another_shape() -> None:
    text = cfg("openai", "URL").replace("models: [m]", "models: [m]\n    retry: {max_attempts: 1}")
    with OpenAIFake() as fake, Client(parse_config(text.replace("URL", fake.base_url))) as c:
        fake.push(Reply(status=500, error="out of memory"))
        with pytest.raises(AllProvidersFailed):
            c.chat("who?", schema=SCHEMA)
    assert len(fake.requests) == 1


# -- through the Anthropic plugin: the forced tool call, against the Anthropic fake ----------
def _answer(args: dict[str, object], text: str = "") -> Reply:
    return Reply(text=text, tool_calls=[{"name": "answer", "arguments": args}])


def _anthropic_cfg(url: str) -> str:
    return cfg("anthropic", url, "claude-fake-1").replace(
        "    models:", "    api_key: sk-ant-test\n    models:"
    )


def _check_anthropic_requests(fake: object, schema: dict[str, object]) -> None:
    first, second = (r.json for r in fake.message_requests())  # type: ignore[attr-defined]
    # Forced tool call in the Messages API's own shape; no response_format (it has none).
    assert first["tools"] == [
        {
            "name": "answer",
            "input_schema": schema,
            "description": "Give the answer in this structure.",
        }
    ]
    assert first["tool_choice"] == {"type": "tool", "name": "answer"}
    assert "response_format" not in first
    # The retry carries the bad answer and the validation error.
    assert second["messages"][1] == {"role": "assistant", "content": '{"name": "Ada"}'}
    assert "'age' is a required property" in second["messages"][2]["content"]
    for body in (first, second):  # the official SDK's types take the request as built
        check_request(body)


def test_anthropic_forced_tool_answer_is_parsed_and_retried() -> None:
    with AnthropicFake() as fake, Client(parse_config(_anthropic_cfg(fake.base_url))) as c:
        fake.push(_answer({"name": "Ada"}), _answer({"name": "Ada", "age": 36}))
        got = c.chat("who?", schema=Person)
    assert got == Person(name="Ada", age=36)
    _check_anthropic_requests(fake, Person.model_json_schema())


def test_anthropic_forced_tool_answer_async() -> None:
    async def run() -> object:
        with AnthropicFake() as fake:
            async with AsyncClient(parse_config(_anthropic_cfg(fake.base_url))) as c:
                fake.push(_answer({"name": "Ada"}), _answer({"name": "Ada", "age": 36}))
                got = await c.chat("who?", schema=SCHEMA)
            _check_anthropic_requests(fake, SCHEMA)
            return got

    import asyncio

    assert asyncio.run(run()) == {"name": "Ada", "age": 36}


def test_anthropic_text_beside_the_forced_tool_call_is_not_taken_for_the_answer() -> None:
    # Claude may say a sentence before the tool_use block; the answer is the tool's input.
    with AnthropicFake() as fake, Client(parse_config(_anthropic_cfg(fake.base_url))) as c:
        fake.push(_answer({"name": "Ada", "age": 36}, text="Here is the answer."))
        assert c.chat("who?", schema=Person) == Person(name="Ada", age=36)
    assert len(fake.message_requests()) == 1


def test_anthropic_a_schema_that_is_not_an_object_is_wrapped_and_unwrapped() -> None:
    # The Messages API refuses a tool whose input_schema is not an object (400 on
    # input_schema.type; the SDK's types let any dict through): a list schema goes as the
    # "value" property of one, and the answer is the value again.
    numbers = {"type": "array", "items": {"type": "integer"}, "minItems": 2}
    with AnthropicFake() as fake, Client(parse_config(_anthropic_cfg(fake.base_url))) as c:
        fake.push(
            Reply(text="", tool_calls=[{"name": "answer_value", "arguments": {"value": [3, "x"]}}]),
            Reply(text="", tool_calls=[{"name": "answer_value", "arguments": {"value": [3, 4]}}]),
        )
        assert c.chat("two numbers", schema=numbers) == [3, 4]
    first, second = (r.json for r in fake.message_requests())
    assert first["tools"][0]["input_schema"] == {
        "type": "object",
        "properties": {"value": numbers},
        "required": ["value"],
    }
    assert first["tool_choice"] == {"type": "tool", "name": "answer_value"}
    assert second["messages"][1] == {"role": "assistant", "content": '[3, "x"]'}
    assert "1: 'x' is not of type 'integer'" in second["messages"][2]["content"]
    for body in (first, second):
        check_request(body)


def test_anthropic_refusing_the_tool_request_is_not_asked_without_the_schema() -> None:
    # A 400 makes solve() try the json_object shape once; on Anthropic that must still be
    # the forced tool (it has no response_format to fall back to), so the API's own
    # refusal reaches the caller instead of an unconstrained answer passing by luck.
    refusal = "tools.0.custom.input_schema: JSON schema is invalid"
    with AnthropicFake() as fake, Client(parse_config(_anthropic_cfg(fake.base_url))) as c:
        fake.push(
            Reply(status=400, error=refusal),
            Reply(status=400, error=refusal),
            Reply(text='{"name": "Ada", "age": 36}'),
        )
        with pytest.raises(AllProvidersFailed) as info:
            c.chat("who?", schema=SCHEMA)
    assert refusal in str(info.value)
    bodies = [r.json for r in fake.message_requests()]
    assert len(bodies) == 2
    assert all(b["tool_choice"] == {"type": "tool", "name": "answer"} for b in bodies)
