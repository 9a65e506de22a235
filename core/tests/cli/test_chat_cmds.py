"""``llmcore chat``, ``embed``, ``models`` and ``models pull`` against fake servers, run as
the real command (a subprocess), for the core ``openai`` type and the vLLM and LM Studio
plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from llmcore.testing.fakes import LMStudioFake, OpenAIFake, Reply, VLLMFake
from llmcore.testing.fakes.ollama import OllamaFake

FAKES = {"openai": OpenAIFake, "vllm": VLLMFake, "lmstudio": LMStudioFake}


def cli(config: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmcore", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "llmcore.yaml"
    path.write_text(body)
    return path


@pytest.fixture(params=sorted(FAKES))
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[OpenAIFake, Path]]:
    plugin = request.param
    with FAKES[plugin]() as fake:
        cfg = write_config(
            tmp_path,
            f"providers:\n  {plugin}:\n    plugin: {plugin}\n"
            f"    base_url: {fake.base_url}\n"
            f"    models: [{fake.models[0]}]\n"
            f"metrics:\n  enabled: false\n",
        )
        yield fake, cfg


def test_chat_streams_from_each_type(served: tuple[OpenAIFake, Path]) -> None:
    fake, cfg = served
    fake.push(Reply(text="streamed to the terminal"))
    out = cli(cfg, "chat", "hello", "there")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "streamed to the terminal\n"
    body = fake.requests[-1].json
    assert body["stream"] is True
    assert body["messages"] == [{"role": "user", "content": "hello there"}]


def test_chat_json(served: tuple[OpenAIFake, Path]) -> None:
    fake, cfg = served
    fake.push(Reply(text="as json", usage=(7, 2)))
    out = cli(cfg, "chat", "--json", "--system", "be brief", "--temperature", "0.2", "q")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["content"] == "as json"
    assert data["usage"]["input_tokens"] == 7 and data["usage"]["output_tokens"] == 2
    assert data["provider"] and data["model"] == fake.models[0]
    assert data["latency_s"] > 0
    assert len(data["attempts"]) == 1 and data["attempts"][0]["ok"] is True
    body = fake.requests[-1].json
    assert "stream" not in body and body["temperature"] == 0.2
    assert body["messages"][0] == {"role": "system", "content": "be brief"}


@pytest.mark.slow  # the fake waits 1.5 s between chunks: the first must show before
def test_chat_output_really_streams(tmp_path: Path) -> None:
    with OpenAIFake() as fake:
        cfg = write_config(
            tmp_path,
            f"providers:\n  o:\n    plugin: openai\n"
            f"    base_url: {fake.base_url}\n    models: [m]\n",
        )
        fake.push(Reply(chunks=["first ", "second"], text="first second", chunk_delay=1.5))
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmcore", "--config", str(cfg), "chat", "go"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            got = ""
            while "first" not in got:
                ch = proc.stdout.read(1)
                assert ch, "the command ended before printing anything"
                got += ch
            assert proc.poll() is None, "the first words came only after the whole answer"
            rest = proc.stdout.read()
        finally:
            proc.wait(timeout=30)
        assert (got + rest).strip() == "first second"


def test_chat_no_stream_and_stdin(served: tuple[OpenAIFake, Path]) -> None:
    fake, cfg = served
    fake.push(Reply(text="whole answer"))
    out = cli(cfg, "chat", "--no-stream", "-", stdin="from stdin")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "whole answer\n"
    assert fake.requests[-1].json["messages"][-1]["content"] == "from stdin"


def test_chat_errors_are_clear(tmp_path: Path) -> None:
    with OpenAIFake() as fake:
        cfg = write_config(
            tmp_path,
            f"providers:\n  o:\n    plugin: openai\n"
            f"    base_url: {fake.base_url}\n    models: [m]\n"
            f"    retry: {{max_attempts: 1}}\n",
        )
        wrong = cli(cfg, "chat", "--provider", "oo", "hi")
        assert wrong.returncode == 2 and "no enabled provider named 'oo'" in wrong.stderr
        assert "Traceback" not in wrong.stderr
        fake.push(Reply(status=404, error="model 'm' not found"))
        missing = cli(cfg, "chat", "--no-stream", "hi")
        assert missing.returncode != 0
        assert "ModelNotFoundError" in missing.stderr and "llmcore models" in missing.stderr
        empty = cli(cfg, "chat", stdin="")
        assert empty.returncode == 2 and "give a prompt" in empty.stderr


def test_embed(served: tuple[OpenAIFake, Path]) -> None:
    fake, cfg = served
    out = cli(cfg, "embed", "--json", "alpha", "beta")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert len(data["vectors"]) == 2 and len(data["vectors"][0]) == fake.embedding_dim
    assert fake.requests[-1].json["input"] == ["alpha", "beta"]
    human = cli(cfg, "embed", "alpha")
    assert (
        human.returncode == 0 and f"1 vector(s) of {fake.embedding_dim} dimensions" in human.stdout
    )


def test_models_lists_context_and_capabilities(tmp_path: Path) -> None:
    with VLLMFake() as v, LMStudioFake() as lms:
        cfg = write_config(
            tmp_path,
            f"providers:\n"
            f"  v:\n    plugin: vllm\n    base_url: {v.base_url}\n"
            f"  l:\n    plugin: lmstudio\n    base_url: {lms.base_url}\n"
            f"  gone:\n    plugin: openai\n"
            f"    base_url: http://127.0.0.1:9/v1\n",
        )
        out = cli(cfg, "models", "--json")
        assert out.returncode == 0, out.stderr
        rows = {(m["provider"], m["name"]): m for m in json.loads(out.stdout)}
        assert rows[("v", "fake-model")]["context_length"] == v.max_model_len
        vlm = rows[("l", "qwen2-vl-7b-instruct")]
        assert vlm["capabilities"] == ["completion", "vision"] and vlm["loaded"] is False
        assert "gone:" in out.stderr and "not reachable" in out.stderr
        only = cli(cfg, "models", "--provider", "l")
        assert only.returncode == 0
        assert "qwen2.5-7b-instruct" in only.stdout and "Q4_K_M" in only.stdout
        assert "fake-model" not in only.stdout
        failing = cli(cfg, "models", "--provider", "gone")
        assert failing.returncode != 0 and "not reachable" in failing.stderr


def test_models_pull_with_progress(tmp_path: Path) -> None:
    with OllamaFake() as fake:
        cfg = write_config(
            tmp_path, f"providers:\n  ollama:\n    plugin: ollama\n    base_url: {fake.url}\n"
        )
        t0 = time.monotonic()
        out = cli(cfg, "models", "pull", "gemma3:270m", "--provider", "ollama")
        assert out.returncode == 0, out.stderr
        assert "pulled gemma3:270m onto ollama" in out.stdout
        assert any(r.path == "/api/pull" for r in fake.requests)
        assert "gemma3:270m" in fake.catalog
        assert time.monotonic() - t0 < 60
        no_pull = write_config(
            tmp_path, "providers:\n  o:\n    plugin: openai\n    base_url: http://127.0.0.1:9/v1\n"
        )
        refused = cli(no_pull, "models", "pull", "x")
        assert refused.returncode == 2 and "can pull" in refused.stderr
