"""Conversations keep and send their history, trim it to the model's context with a notice,
continue from the logs, and ``llmcore chat -i`` works at a real pseudo-terminal."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pexpect
from llmcore import AsyncClient, Client
from llmcore.config import parse_config
from llmcore.conversation import fit
from llmcore.promptlog import query
from llmcore.testing.fakes import OpenAIFake, Reply
from llmcore.types import Message


def config(fake: OpenAIFake, tmp_path: Path, model: str = "m", logs: bool = True) -> str:
    return f"""
providers:
  o:
    plugin: openai
    base_url: {fake.base_url}
    models: [{model}]
logs: {{enabled: {str(logs).lower()}, path: {tmp_path / "logs.db"}}}
metrics: {{enabled: false}}
routing: {{state: memory}}
"""


def contents(fake: OpenAIFake, i: int) -> list[str]:
    return [m["content"] for m in fake.requests[i].json["messages"]]


def test_each_turn_sends_the_history(tmp_path: Path) -> None:
    with OpenAIFake() as fake, Client(parse_config(config(fake, tmp_path, logs=False))) as c:
        fake.push(Reply(text="A1"), Reply(text="A2"), Reply(text="A3"))
        conv = c.conversation(system="sys", temperature=0.1)
        conv.send("Q1")
        assert "".join(ch.content for ch in conv.stream("Q2")) == "A2"
        conv.send("Q3")
    assert contents(fake, 0) == ["sys", "Q1"]
    assert contents(fake, 1) == ["sys", "Q1", "A1", "Q2"]
    assert contents(fake, 2) == ["sys", "Q1", "A1", "Q2", "A2", "Q3"]
    assert fake.requests[2].json["temperature"] == 0.1
    assert len(conv.messages) == 7


def test_async_conversation(tmp_path: Path) -> None:
    async def run() -> list[str]:
        with OpenAIFake() as fake:
            async with AsyncClient(parse_config(config(fake, tmp_path))) as c:
                fake.push(Reply(text="A1"), Reply(text="A2"))
                conv = c.conversation()
                await conv.send("Q1")
                got = [ch.content async for ch in conv.stream("Q2")]
                c.features.log.flush()
                assert "".join(got) == "A2"
                return contents(fake, 1)

    assert asyncio.run(run()) == ["Q1", "A1", "Q2"]
    rows = query(tmp_path / "logs.db", limit=None)
    assert [r["response"] for r in rows] == ["A1", "A2"]
    assert rows[0]["conversation_id"] == rows[1]["conversation_id"]


def test_a_logged_conversation_continues_in_a_new_client(tmp_path: Path) -> None:
    with OpenAIFake() as fake:
        with Client(parse_config(config(fake, tmp_path))) as c:
            fake.push(Reply(text="A1"))
            first = c.conversation(system="sys")
            first.send("Q1")
        (row,) = query(tmp_path / "logs.db")  # closing the client wrote the log
        cid = row["conversation_id"]
        assert cid == first.cid
        with Client(parse_config(config(fake, tmp_path))) as c:
            fake.push(Reply(text="A2"))
            conv = c.conversation(cid)
            conv.send("Q2")
    assert contents(fake, 1) == ["sys", "Q1", "A1", "Q2"]


def test_history_is_trimmed_to_the_context_with_a_notice(tmp_path: Path) -> None:
    # gemma3:1b has a 32768-token context in the bundled registry
    notices: list[str] = []
    with (
        OpenAIFake() as fake,
        Client(parse_config(config(fake, tmp_path, "gemma3:1b", logs=False))) as c,
    ):
        conv = c.conversation(system="sys", on_notice=notices.append, max_tokens=100)
        big = "word " * 40_000  # ~50k tokens by the estimate: one turn alone nearly fills it
        for i in range(3):
            fake.push(Reply(text=f"A{i}"))
            conv.send(f"Q{i} {big}")
    sent = contents(fake, 2)
    assert sent[0] == "sys" and sent[-1].startswith("Q2")
    assert not any(s.startswith("Q0") for s in sent)  # the oldest turns went first
    assert conv.trimmed >= 2 and notices and "oldest" in notices[-1]


def test_fit_keeps_system_and_last_message() -> None:
    msgs = [
        Message("system", "s"),
        Message("user", "x" * 400),
        Message("assistant", "y" * 400),
        Message("user", "z" * 40),
    ]
    kept, dropped = fit(msgs, context=60, reserve=10)
    assert [m.role for m in kept] == ["system", "user"] and kept[-1].content == "z" * 40
    assert dropped == 2
    assert fit(msgs, None) == (msgs, 0)


def test_interactive_session_through_a_pty(tmp_path: Path) -> None:
    with OpenAIFake() as fake:
        cfg = tmp_path / "llmcore.yaml"
        cfg.write_text(config(fake, tmp_path))
        fake.push(
            Reply(text="first answer"),
            Reply(chunks=["slow "] * 50, text="slow " * 50, chunk_delay=0.2),
            Reply(text="third answer"),
        )
        child = pexpect.spawn(
            sys.executable,
            ["-m", "llmcore", "--config", str(cfg), "chat", "-i"],
            env={**os.environ, "NO_COLOR": "1"},
            encoding="utf-8",
            timeout=60,
            # Ctrl-C as at a terminal: a test run started in the background (`pytest &`,
            # nohup) inherits SIGINT ignored, and the session would never see the key.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            child.expect("> ")
            child.sendline("hello")
            child.expect("first answer")
            child.expect("> ")
            child.sendline("!multi")
            child.sendline("line one")
            child.sendline("line two")
            child.sendline("!end")
            child.expect("slow slow")
            child.sendintr()  # Ctrl-C stops the answer, not the session
            child.expect(r"\[stopped\]")
            child.expect("> ")
            child.sendline("third")
            child.expect("third answer")
            child.expect("> ")
            child.sendline("!exit")
            child.expect(pexpect.EOF)
        finally:
            child.close(force=True)
        assert child.exitstatus == 0
    assert contents(fake, 1)[-1] == "line one\nline two"
    # the stopped answer's received part stays in the history
    third = contents(fake, 2)
    assert third[:3] == ["hello", "first answer", "line one\nline two"]
    assert third[3].startswith("slow slow") and third[-1] == "third"
    rows = query(tmp_path / "logs.db", limit=None)
    assert [r["prompt"] for r in rows] == ["hello", "line one\nline two", "third"]
    assert len({r["conversation_id"] for r in rows}) == 1
