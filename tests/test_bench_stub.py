"""The benchmark stub speaks the APIs faithfully, and every compared client gets the same answer.

Benchmarks compare clients side by side; that comparison is only fair if each one does the
whole job against the stub. The official ``openai`` and ``ollama`` clients parse every kind
of reply the stub gives, and each client in ``bench/clients.py`` (all but LiteLLM, which
lives in its own venv) returns the stub's exact text, whole and streamed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import clients, stub  # noqa: E402


@pytest.fixture(scope="module")
def stub_url() -> Iterator[str]:
    with stub.running() as url:
        yield url


def test_openai_client_parses_every_reply(stub_url: str) -> None:
    import openai

    c = openai.OpenAI(base_url=stub_url + "/v1", api_key="k", max_retries=0)
    msgs = [{"role": "user", "content": "hi"}]
    whole = c.chat.completions.create(model=stub.MODEL, messages=msgs)  # type: ignore[arg-type]
    assert whole.choices[0].message.content == stub.TEXT
    assert whole.usage is not None and whole.usage.completion_tokens == len(stub.WORDS)
    chunks = list(
        c.chat.completions.create(
            model=stub.MODEL,
            messages=msgs,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == stub.TEXT
    assert chunks[-1].usage is not None and not chunks[-1].choices
    # without include_usage there is no usage chunk, as with OpenAI
    plain = list(c.chat.completions.create(model=stub.MODEL, messages=msgs, stream=True))  # type: ignore[arg-type]
    assert all(ch.usage is None for ch in plain)
    assert [m.id for m in c.models.list()] == [stub.MODEL]
    text = c.completions.create(model=stub.MODEL, prompt="hi")
    assert text.choices[0].text == stub.TEXT


def test_ollama_client_parses_every_reply(stub_url: str) -> None:
    import ollama

    c = ollama.Client(host=stub_url)
    msgs = [{"role": "user", "content": "hi"}]
    whole = c.chat(model=stub.MODEL, messages=msgs)
    assert whole.message.content == stub.TEXT and whole.done and whole.eval_count == 8
    parts = list(c.chat(model=stub.MODEL, messages=msgs, stream=True))
    assert "".join(p.message.content or "" for p in parts) == stub.TEXT
    assert parts[-1].done and not any(p.done for p in parts[:-1])
    assert [m.model for m in c.list().models] == [stub.MODEL]


def test_unknown_path_is_a_404_and_the_connection_stays_usable(stub_url: str) -> None:
    import httpx

    with httpx.Client(base_url=stub_url) as h:
        assert h.get("/nope").status_code == 404
        assert (
            h.post("/v1/chat/completions", json={"model": "m"}).json()["object"]
            == "chat.completion"
        )


@pytest.mark.parametrize("name", [n for n in clients.CLIENTS if n != "litellm"])
def test_every_compared_client_returns_the_stub_answer(
    stub_url: str, name: str, llmcore_isolated: Path
) -> None:
    plain, stream = clients.make(name, stub_url)
    for _ in range(3):  # several calls on one pooled connection
        assert plain() == stub.TEXT
        assert "".join(stream()) == stub.TEXT
    timings = clients.measure(plain, stream, n=2, warmup=1)
    assert all(len(v) == 2 and all(t > 0 for t in v) for v in timings.values())
    assert all(f <= t for f, t in zip(timings["ttfc"], timings["total"], strict=True))


def test_gateway_bench_pins_every_process_and_thread_of_a_server(stub_url: str) -> None:
    """The gateway benchmark pins a one-worker gateway to the stub's core while it
    measures it, and lets it float again after: every process of the server (two
    pass-through workers here) and every thread, not only the one it started.

    A server started by a process pinned to one core (the load generator, after
    ``pin_client``) inherits that core; setting its CPUs frees it again, which is why
    every measurement sets where its server runs."""
    import os

    from bench import bench_gateway

    every = os.sched_getaffinity(0)
    if len(every) < 2:
        pytest.fail("this test needs two cores, as the benchmark does")
    one = {min(every)}

    def allowed(pid: int) -> list[set[int]]:
        return [os.sched_getaffinity(int(tid)) for tid in os.listdir(f"/proc/{pid}/task")]

    os.sched_setaffinity(0, one)  # as pin_client() leaves the benchmark's process
    try:
        proc, _ = bench_gateway.start_pass_through(stub_url, 2)
    finally:
        os.sched_setaffinity(0, every)
    try:
        pids = bench_gateway._group(proc)
        assert len(pids) == 2 and proc.pid in pids
        assert all(a == one for pid in pids for a in allowed(pid))  # inherited
        bench_gateway._set_cpus(proc, every)
        assert all(a == every for pid in pids for a in allowed(pid))
        bench_gateway._set_cpus(proc, one)
        assert all(a == one for pid in pids for a in allowed(pid))
    finally:
        bench_gateway._stop(proc)
