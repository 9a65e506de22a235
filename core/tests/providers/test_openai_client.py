"""``Client`` and ``AsyncClient`` (router, hooks) over the core ``openai`` type and the vLLM
and LM Studio plugins, each against its fake: chat, stream, generate, embed, models."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import llmcore
import pytest
from llmcore.config import parse_config
from llmcore.testing.fakes import LMStudioFake, OpenAIFake, Reply, VLLMFake

FAKES = {"openai": OpenAIFake, "vllm": VLLMFake, "lmstudio": LMStudioFake}


@pytest.fixture(params=sorted(FAKES))
def setup(request: pytest.FixtureRequest) -> Iterator[tuple[OpenAIFake, llmcore.Config]]:
    plugin = request.param
    with FAKES[plugin]() as fake:
        cfg = parse_config(
            f"providers:\n  p:\n    plugin: {plugin}\n"
            f"    base_url: {fake.base_url}\n    models: [{fake.models[0]}]\n"
            f"metrics:\n  enabled: false\n"
        )
        yield fake, cfg


def test_sync_client(setup: tuple[OpenAIFake, llmcore.Config]) -> None:
    fake, cfg = setup
    with llmcore.Client(cfg) as c:
        fake.push(Reply(text="chat answer", usage=(2, 2)))
        r = c.chat("hi", system="sys", temperature=0.5, top_k=3)
        assert r.content == "chat answer" and r.provider == "p"
        body = fake.requests[-1].json
        assert body["temperature"] == 0.5 and body["top_k"] == 3
        assert body["messages"][0] == {"role": "system", "content": "sys"}

        fake.push(Reply(text="streamed answer here"))
        chunks = list(c.stream("hi"))
        assert "".join(ch.content for ch in chunks) == "streamed answer here"
        assert chunks[-1].finish_reason == "stop" and chunks[-1].usage is not None

        fake.push(Reply(text="generated"))
        g = c.generate("Once upon a time", max_tokens=8)
        sent = fake.requests[-1]
        assert sent.path == "/v1/completions" and sent.json["prompt"] == "Once upon a time"
        assert g.content == "generated"

        e = c.embed(["x", "y"])
        assert len(e.vectors) == 2 and e.provider == "p"

        names = [m.name for m in c.models()]
        assert fake.models[0] in names


def test_async_client(setup: tuple[OpenAIFake, llmcore.Config]) -> None:
    fake, cfg = setup

    async def run() -> dict[str, Any]:
        async with llmcore.AsyncClient(cfg) as c:
            out: dict[str, Any] = {}
            out["chat"] = await asyncio.gather(*(c.chat(f"q{i}") for i in range(5)))
            fake.push(Reply(text="a streamed one"))
            out["stream"] = [ch async for ch in c.stream("s")]
            out["generate"] = await c.generate("prompt")
            out["embed"] = await c.embed("one")
            out["models"] = await c.models()
            return out

    out = asyncio.run(run())
    assert [r.content for r in out["chat"]] == [fake.default.text] * 5
    assert "".join(ch.content for ch in out["stream"]) == "a streamed one"
    assert out["generate"].content == fake.default.text
    assert len(out["embed"].vectors) == 1
    assert fake.models[0] in [m.name for m in out["models"]]


def test_stream_cut_after_text_is_an_interrupted_stream(
    setup: tuple[OpenAIFake, llmcore.Config],
) -> None:
    fake, cfg = setup
    fake.push(Reply(text="one two three four five six", cut_after=3))
    got: list[str] = []
    with llmcore.Client(cfg) as c, pytest.raises(llmcore.StreamInterrupted) as info:
        for ch in c.stream("hi"):
            got.append(ch.content)
    assert got and info.value.partial == "".join(got)
