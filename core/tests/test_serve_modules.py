"""The gateway's pure modules: config checks, error mapping, translation edge cases and the
shared request counter (no server, no network)."""

from __future__ import annotations

import time

import pytest
from llmcore.config import parse_config
from llmcore.errors import AllProvidersFailed, ConfigError
from llmcore.serve import anthropic_wire, openai_wire, responses_wire
from llmcore.serve.keys import KeyRing, SharedCounters, sha256_hex
from llmcore.serve.wire import WireError, from_error
from llmcore.types import Attempt, ChatResponse, StreamChunk, Usage


@pytest.mark.parametrize(
    ("yaml_text", "where", "says"),
    [
        ("serve: {models: {fast: [llama3]}}", "serve.models.fast.0", "not provider/model"),
        ("serve: {models: {fast: []}}", "serve.models.fast", "at least one"),
        (
            "serve: {keys: {a: {key_env: X, sha256: " + "a" * 64 + "}}}",
            "serve.keys.a",
            "exactly one",
        ),
        ("serve: {keys: {a: {sha256: abc}}}", "serve.keys.a.sha256", "64 hex digits"),
        ("serve: {workers: 0}", "serve.workers", "between 1 and 256"),
        ("serve: {keys: {a: {key_env: X, rpm: 0}}}", "serve.keys.a.rpm", "at least 1"),
        ("serve: {max_concurency: 3}", "serve.max_concurency", "did you mean max_concurrency"),
    ],
)
def test_serve_config_errors_name_the_key(yaml_text: str, where: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(yaml_text, source="llmcore.yaml")
    assert info.value.path == where and says in str(info.value)


def test_errors_map_to_the_status_a_client_should_see() -> None:
    nobody = from_error(AllProvidersFailed([], message="nobody serves x"), "x")
    assert (nobody.status, nobody.kind) == (404, "not_found")
    until = time.time() + 30
    cooling = from_error(
        AllProvidersFailed([Attempt("a", "m", skipped=True, cooldown_until=until)]), "m"
    )
    assert cooling.status == 429 and 29 <= int(cooling.headers["Retry-After"]) <= 31
    refused = from_error(
        AllProvidersFailed(
            [
                Attempt("a", "m", status=400, message="bad x"),
                Attempt("b", "m", status=422, message="bad y"),
            ]
        )
    )
    assert (refused.status, refused.message) == (400, "bad y")
    mixed = from_error(
        AllProvidersFailed([Attempt("a", "m", status=500), Attempt("b", "m", status=400)])
    )
    assert mixed.status == 502 and mixed.kind == "upstream"


def test_each_protocol_renders_errors_in_its_own_shape() -> None:
    err = WireError(429, "slow down", "rate_limit")
    assert openai_wire.error_body(err)["error"]["type"] == "rate_limit_error"
    assert anthropic_wire.error_body(err) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
    }
    assert responses_wire.error_body(err)["error"]["message"] == "slow down"
    assert (
        anthropic_wire.error_body(WireError(529, "x", "overloaded"))["error"]["type"]
        == "overloaded_error"
    )


def test_anthropic_usage_keeps_cached_tokens_apart() -> None:
    u = anthropic_wire.usage_dict(Usage(input_tokens=100, output_tokens=5, cached_tokens=60))
    assert u["input_tokens"] == 40 and u["cache_read_input_tokens"] == 60


def test_tool_arguments_that_are_not_json_are_kept() -> None:
    resp = ChatResponse(
        content="",
        tool_calls=[
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "not json"}}
        ],
        finish_reason="tool_calls",
    )
    block = anthropic_wire.render_message(resp, "m")["content"][-1]
    assert block["input"] == {"_raw": "not json"}


def test_openai_stream_without_a_finish_still_ends_properly() -> None:
    enc = openai_wire.ChatStream("m", include_usage=True)
    out = enc.chunk(StreamChunk(content="hi")) + enc.end()
    lines = [x for x in out.decode().split("\n\n") if x]
    assert '"finish_reason":"stop"' in lines[-3] and lines[-1] == "data: [DONE]"
    assert '"usage"' in lines[-2]


def test_developer_role_and_parts_become_llmcore_messages() -> None:
    call = openai_wire.parse_chat(
        {
            "model": "m",
            "messages": [
                {"role": "developer", "content": "rules"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "look"},
                        {"type": "image_url", "image_url": {"url": "data:x"}},
                    ],
                },
            ],
        }
    )
    msgs = call.request.messages
    assert (msgs[0].role, msgs[1].content, msgs[1].images) == ("system", "look", ["data:x"])
    with pytest.raises(WireError) as bad:
        openai_wire.parse_chat(
            {
                "model": "m",
                "messages": [
                    {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}
                ],
            }
        )
    assert "cannot be carried" in bad.value.message


def test_responses_parallel_function_calls_are_one_assistant_turn() -> None:
    req, _, _ = responses_wire.parse_responses_request(
        {
            "model": "m",
            "input": [
                {"role": "user", "content": "go"},
                {"type": "function_call", "call_id": "a", "name": "f", "arguments": "{}"},
                {"type": "function_call", "call_id": "b", "name": "g", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "a", "output": "1"},
                {"type": "function_call_output", "call_id": "b", "output": "2"},
            ],
        }
    )
    roles = [m.role for m in req.messages]
    assert roles == ["user", "assistant", "tool", "tool"]
    assert [c["id"] for c in req.messages[1].tool_calls or []] == ["a", "b"]


def test_shared_counter_is_a_sliding_window() -> None:
    c = SharedCounters(2)
    t = 600.0  # the start of a minute
    assert [c.take(0, 2, t), c.take(0, 2, t + 1)] == [0.0, 0.0]
    assert c.take(0, 2, t + 2) > 0  # third in the same minute
    assert c.take(1, 2, t + 2) == 0.0  # another key has its own slot
    # half-way through the next minute, half of the last minute's two still count
    assert c.take(0, 2, t + 90) == 0.0
    assert c.take(0, 2, t + 90) > 0


def test_keys_compare_hashes_and_never_keep_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmcore.config import ServeKeyConfig

    monkeypatch.setenv("TEAM_KEY", "sk-team-1")
    ring = KeyRing(
        {
            "team": ServeKeyConfig(key_env="TEAM_KEY"),
            "ci": ServeKeyConfig(sha256=sha256_hex("ci-key")),
        },
        None,
    )
    assert ring.identify("sk-team-1")[0] == "team" and ring.identify("ci-key")[0] == "ci"
    assert "sk-team-1" not in repr(ring.entries)
    with pytest.raises(WireError) as bad:
        ring.identify("nope")
    assert bad.value.status == 401
    monkeypatch.delenv("TEAM_KEY")
    with pytest.raises(ConfigError, match="TEAM_KEY is not set"):
        KeyRing({"team": ServeKeyConfig(key_env="TEAM_KEY")}, None)


def test_a_worker_tunes_the_garbage_collector_for_a_server() -> None:
    import gc

    from llmcore.serve.server import tune_gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold()[0] == 10_000
        assert gc.get_freeze_count() > 0  # what was set up is out of later collections
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
