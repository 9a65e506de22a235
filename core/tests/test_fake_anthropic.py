"""AnthropicFake refuses what the real Messages API refuses, and the official ``anthropic``
SDK parses every kind of answer it gives (stop reasons, prompt-caching usage, stream errors).
"""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import pytest
from llmcore.testing.fakes import AnthropicFake, Reply

HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
BODY = {"model": "claude-fake-1", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}


@pytest.fixture
def fake() -> Iterator[AnthropicFake]:
    with AnthropicFake() as server:
        yield server


def sdk(fake: AnthropicFake) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.base_url, api_key="k", max_retries=0)


@pytest.mark.parametrize(
    ("headers", "body", "status", "kind", "message"),
    [
        (
            {"anthropic-version": "2023-06-01"},
            BODY,
            401,
            "authentication_error",
            "x-api-key header is required",
        ),
        (
            {"x-api-key": "k"},
            BODY,
            400,
            "invalid_request_error",
            "anthropic-version: header is required",
        ),
        (
            HEADERS,
            {k: v for k, v in BODY.items() if k != "max_tokens"},
            400,
            "invalid_request_error",
            "max_tokens: Field required",
        ),
    ],
)
def test_refuses_what_the_api_refuses_without_using_the_script(
    fake: AnthropicFake,
    headers: dict[str, str],
    body: dict[str, object],
    status: int,
    kind: str,
    message: str,
) -> None:
    fake.push(Reply(text="kept for the next valid request"))
    resp = httpx.post(fake.url + "/v1/messages", headers=headers, json=body)
    assert resp.status_code == status
    assert resp.json() == {"type": "error", "error": {"type": kind, "message": message}}
    ok = httpx.post(fake.url + "/v1/messages", headers=HEADERS, json=BODY)
    assert ok.json()["content"][0]["text"] == "kept for the next valid request"


def test_bearer_token_is_accepted_like_oauth_clients_send_it(fake: AnthropicFake) -> None:
    resp = httpx.post(
        fake.url + "/v1/messages",
        json=BODY,
        headers={"authorization": "Bearer t", "anthropic-version": "2023-06-01"},
    )
    assert resp.status_code == 200


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("stop_sequence", "stop_sequence"),
        (None, "end_turn"),
    ],
)
def test_stop_reasons_are_anthropics(fake: AnthropicFake, ours: str | None, theirs: str) -> None:
    fake.push(Reply(text="t", finish_reason=ours), Reply(text="t u", finish_reason=ours))
    msg = sdk(fake).messages.create(**BODY)  # type: ignore[arg-type]
    assert msg.stop_reason == theirs
    with sdk(fake).messages.stream(**BODY) as stream:  # type: ignore[arg-type]
        assert stream.get_final_message().stop_reason == theirs


def test_prompt_caching_usage_parses(fake: AnthropicFake) -> None:
    fake.push(Reply(text="cached", usage=(10, 2), extra={"cache_read": 300, "cache_creation": 40}))
    usage = sdk(fake).messages.create(**BODY).usage  # type: ignore[arg-type]
    assert (
        usage.input_tokens,
        usage.cache_read_input_tokens,
        usage.cache_creation_input_tokens,
        usage.output_tokens,
    ) == (10, 300, 40, 2)


def test_an_error_event_inside_a_stream_is_raised_by_the_sdk(fake: AnthropicFake) -> None:
    fake.push(Reply(text="one two three", extra={"stream_error": "overloaded_error"}))
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        sdk(fake).messages.stream(**BODY) as stream,
    ):  # type: ignore[arg-type]
        list(stream.text_stream)
    assert "overloaded" in str(info.value).lower()


def test_lists_the_models_it_serves(fake: AnthropicFake) -> None:
    fake2 = AnthropicFake(models=["claude-a", "claude-b"]).start()
    try:
        assert [m.id for m in sdk(fake2).models.list()] == ["claude-a", "claude-b"]
    finally:
        fake2.stop()
    sdk(fake).messages.create(**{**BODY, "model": "claude-other"})  # type: ignore[arg-type]
    assert [m.id for m in sdk(fake).models.list()] == ["claude-fake-1", "claude-other"]
