"""Errors that read well anywhere: plain lines when stderr is a file or a pipe (hints whole,
never wrapped), one JSON object on stdout with `chat --json`, and an AllProvidersFailed
with one distinct cause that is also an instance of that cause's class."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from llmcore.client import Client
from llmcore.config import parse_config
from llmcore.errors import (
    AllProvidersFailed,
    AuthenticationError,
    ModelNotFoundError,
    ProviderError,
    RateLimitError,
)
from llmcore.testing.fakes.base import Reply
from llmcore.testing.fakes.ollama import OllamaFake
from llmcore.testing.fakes.openai import OpenAIFake


def _config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "llmcore.yaml"
    path.write_text(
        textwrap.dedent(body) + "agents: {}\nmetrics: {sinks: []}\nrouting: {state: memory}\n"
    )
    return path


def _llmcore(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # capture_output: stdout and stderr are pipes, as in CI or `llmcore chat … | tee`.
    return subprocess.run(
        [sys.executable, "-m", "llmcore", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**__import__("os").environ, "COLUMNS": "80"},
    )


def test_every_provider_failed_in_a_pipe_is_plain_lines_with_whole_hints(tmp_path: Path) -> None:
    with OllamaFake() as ollama:
        cfg = _config(
            tmp_path,
            f"""
            providers:
              local: {{plugin: ollama, base_url: '{ollama.url}',
                      models: [a-model-with-a-rather-long-name-that-is-not-pulled:latest]}}
        """,
        )
        out = _llmcore(tmp_path, "--config", str(cfg), "chat", "--no-stream", "hi")
    assert out.returncode == 1
    err = out.stderr
    assert "Traceback" not in err and "━" not in err and "┃" not in err  # no table
    assert err.startswith("error: all 1 attempt(s) failed:")
    hint = "ollama pull a-model-with-a-rather-long-name-that-is-not-pulled:latest"
    lines = err.splitlines()
    assert any(hint in line for line in lines), err  # on one line, never split
    assert out.stdout == ""


def test_chat_json_prints_one_json_object_on_failure_and_exits_1(tmp_path: Path) -> None:
    with (
        OpenAIFake(default=Reply(status=401, error="invalid api key")) as a,
        OpenAIFake(default=Reply(status=500)) as b,
    ):
        cfg = _config(
            tmp_path,
            f"""
            providers:
              a: {{plugin: openai, base_url: '{a.base_url}', api_key: k-test-secret-9999,
                  models: [m1]}}
              b: {{plugin: openai, base_url: '{b.base_url}', api_key: k-test-secret-9999,
                  models: [m1], retry: {{max_attempts: 1}}}}
        """,
        )
        out = _llmcore(tmp_path, "--config", str(cfg), "chat", "--json", "hi")
    assert out.returncode == 1
    data = json.loads(out.stdout)
    assert data["error_type"] == "AllProvidersFailed"
    assert "all 2 attempt(s) failed" in data["error"]
    assert [(x["provider"], x["error_type"]) for x in data["attempts"]] == [
        ("a", "AuthenticationError"),
        ("b", "ResponseError"),
    ]
    assert "k-test-secret-9999" not in out.stdout + out.stderr


def test_chat_json_config_error_is_json_too(tmp_path: Path) -> None:
    cfg = tmp_path / "llmcore.yaml"
    cfg.write_text("routing: {strategy: fastest}\n")
    out = _llmcore(tmp_path, "--config", str(cfg), "chat", "--json", "hi")
    assert out.returncode == 2
    data = json.loads(out.stdout)
    assert data["error_type"] == "ConfigError" and "routing.strategy" in data["error"]
    assert data["attempts"] == []


def _one(url: str, extra: str = "") -> Client:
    return Client(
        parse_config(
            f"providers: {{a: {{plugin: openai, base_url: '{url}', api_key: k-test-1234, "
            f"models: [m1], retry: {{max_attempts: 1}}{extra}}}}}\n"
            "agents: {}\nmetrics: {sinks: []}\nrouting: {state: memory}\n"
        )
    )


@pytest.mark.parametrize(
    "reply,cls",
    [
        (Reply(status=401, error="bad key"), AuthenticationError),
        (Reply(status=404, error="model 'm1' not found"), ModelNotFoundError),
        (Reply(status=429, headers={"Retry-After": "7"}), RateLimitError),
    ],
)
def test_one_distinct_cause_is_also_an_instance_of_its_class(reply: Reply, cls: type) -> None:
    with OpenAIFake(default=reply) as fake:
        client = _one(fake.base_url)
        with pytest.raises(cls) as info:
            client.chat("hi")
        exc = info.value
        assert isinstance(exc, AllProvidersFailed) and isinstance(exc, ProviderError)
        assert exc.provider == "a" and exc.attempts[0].error_type == cls.__name__
        assert isinstance(exc.__cause__, cls)
        if cls is RateLimitError:
            assert exc.retry_after == 7  # type: ignore[attr-defined]
        client.close()


def test_two_distinct_causes_are_a_plain_all_providers_failed() -> None:
    with OpenAIFake(default=Reply(status=401)) as a, OpenAIFake(default=Reply(status=404)) as b:
        client = Client(
            parse_config(
                f"providers:\n  a: {{plugin: openai, base_url: '{a.base_url}', api_key: k-1234, "
                "models: [m1]}\n"
                f"  b: {{plugin: openai, base_url: '{b.base_url}', api_key: k-1234, "
                "models: [m1]}\n"
                "agents: {}\nmetrics: {sinks: []}\nrouting: {state: memory}\n"
            )
        )
        with pytest.raises(AllProvidersFailed) as info:
            client.chat("hi")
        assert type(info.value) is AllProvidersFailed
        assert not isinstance(info.value, AuthenticationError)
        client.close()


def test_on_a_terminal_the_table_keeps_each_hint_on_one_line(tmp_path: Path) -> None:
    import os
    import pty

    with OllamaFake() as ollama:
        cfg = _config(
            tmp_path,
            f"""
            providers:
              local: {{plugin: ollama, base_url: '{ollama.url}',
                      models: [a-model-with-a-rather-long-name-that-is-not-pulled:latest]}}
        """,
        )
        master, slave = pty.openpty()
        try:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "llmcore",
                    "--config",
                    str(cfg),
                    "chat",
                    "--no-stream",
                    "hi",
                ],
                stdout=subprocess.PIPE,
                stderr=slave,
                text=True,
                cwd=tmp_path,
                env={**os.environ, "COLUMNS": "60", "TERM": "xterm"},
            )
            os.close(slave)
            chunks = []
            while True:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            proc.wait(timeout=120)
            assert proc.stdout is not None
            proc.stdout.close()
        finally:
            os.close(master)
    err = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 1
    assert "every provider failed" in err  # the table, on a terminal
    hint = "ollama pull a-model-with-a-rather-long-name-that-is-not-pulled:latest"
    assert any(hint in line for line in err.splitlines()), err
