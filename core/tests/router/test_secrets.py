"""A canary API key, set for every provider, never leaves through a log line, stderr, a
metrics event, an exception's message or repr, an attempt, or the cooldown state file.

The fakes here are hostile: every error they send quotes the Authorization header they
received, so the key really is in the bytes the router handles.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llmcore.errors import LLMCoreError
from llmcore.testing.contract import dead_url
from llmcore.testing.fakes.base import RecordedRequest, Reply
from llmcore.testing.fakes.openai import OpenAIFake
from router_kit import CANARY, Api, Events, chain

ENV_CANARY = "envcnry-93b1d7f2a6c4e8"


class EchoingFake(OpenAIFake):
    """Fails the way ``plan`` says, quoting the caller's Authorization header each time."""

    def __init__(self, plan: list[str]) -> None:
        super().__init__()
        self.plan = plan

    def next_reply(self, req: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(req)
            kind = self.plan[(len(self.requests) - 1) % len(self.plan)]
        auth = req.headers.get("Authorization", "")
        said = f"invalid credentials {auth} (key {auth.removeprefix('Bearer ')})"
        if kind == "401":
            return Reply(status=401, error=said)
        if kind == "429":
            return Reply(status=429, error=said, headers={"Retry-After": "1"})
        if kind == "500":
            return Reply(status=500, error=said)
        if kind == "html":
            return Reply(status=200, body=f"<html>{said}</html>".encode())
        if kind == "cut":
            return Reply(text=f"partial {said} more words here", cut_after=3)
        return Reply(text="fine")


@pytest.fixture
def hostile() -> Iterator[list[EchoingFake]]:
    fakes = [
        EchoingFake(["401", "500", "html", "cut"]),
        EchoingFake(["429", "500", "ok"]),
        EchoingFake(["html", "ok"]),
    ]
    for f in fakes:
        f.start()
    yield fakes
    for f in fakes:
        f.stop()


def _texts(obj: Any) -> list[str]:
    """Every way an object can be shown: str, repr, and its attempts'/events' dicts."""
    out = [str(obj), repr(obj)]
    for a in getattr(obj, "attempts", None) or []:
        out += [repr(a), str(a.to_dict())]
    return out


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_canary_key_never_leaks(
    is_async: bool,
    hostile: list[EchoingFake],
    make_client: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("LLMCORE_TEST_CANARY", ENV_CANARY)
    state = tmp_path / "state.json"
    text = chain(
        [
            ("a", hostile[0].base_url),
            ("b", hostile[1].base_url),
            ("dead", dead_url(hostile[0].base_url)),
        ],
        routing=f"state: 'file:{state}', cooldown: {{failure_threshold: 2}}",
    )
    text = text.replace(
        "agents: {}",
        (
            f"  env: {{plugin: openai, base_url: '{hostile[2].base_url}', "
            "api_key_env: LLMCORE_TEST_CANARY, models: [m1], retry: {max_attempts: 2, "
            "delay: 0.001}}\nagents: {}"
        ),
    )
    events = Events()
    client = make_client(text, events, async_=is_async)
    api = Api(client, is_async)
    shown: list[str] = [repr(client), repr(client.router), repr(client.runtime.config)]
    shown += [repr(p) for p in client.runtime.providers.values()]
    for i in range(8):
        try:
            shown += _texts(await api.chat(f"question {i}"))
        except LLMCoreError as exc:
            shown += _texts(exc)
        chunks, attempts, err = await api.stream(f"stream {i}")
        shown += [repr(c) for c in chunks] + [repr(a) for a in attempts or []]
        if err is not None:
            shown += [*_texts(err), repr(getattr(err, "partial", ""))]
    shown += [repr(e) for e in events.events] + [str(e.to_dict()) for e in events.events]
    out = capsys.readouterr()
    shown += [out.out, out.err, caplog.text, state.read_text() if state.exists() else ""]
    # The hostile servers did send the keys back: the check below is not vacuous.
    assert any(CANARY in (r.headers.get("Authorization") or "") for r in hostile[0].requests)
    assert any(ENV_CANARY in (r.headers.get("Authorization") or "") for r in hostile[2].requests)
    assert {e.kind for e in events.events} >= {"attempt", "retry", "failover", "cooldown"}
    assert any("***" in s for s in shown)  # ...and they reached messages, redacted
    leaks = [s for s in shown if CANARY in s or ENV_CANARY in s]
    assert leaks == []
    await api.close()
