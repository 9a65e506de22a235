"""Logs, conversations and structured output against the real llama.cpp server (Gemma-3-270M,
a small base model: the tests check what was sent, stored and parsed, never what it says)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import llmcore
import pytest
from llmcore.config import parse_config
from llmcore.promptlog import query
from real_llama import MODEL_ALIAS

pytestmark = pytest.mark.real_server

GREEDY = {"temperature": 0.0, "seed": 7, "max_tokens": 8}


def config_text(base_url: str, tmp_path: Path) -> str:
    return f"""
providers:
  llama:
    plugin: openai
    base_url: {base_url}/v1
    models: [{MODEL_ALIAS}]
    timeout: {{connect: 5, read: 120, write: 30, pool: 10}}
    retry: {{max_attempts: 1}}
agents: {{}}
routing: {{state: memory}}
metrics: {{enabled: false}}
logs: {{enabled: true, path: {tmp_path / "logs.db"}}}
"""


def test_a_logged_conversation(llama_server: str, tmp_path: Path) -> None:
    with llmcore.Client(parse_config(config_text(llama_server, tmp_path))) as c:
        conv = c.conversation(system="You are terse.", **GREEDY)
        first = conv.send("Name a colour.")
        streamed = "".join(ch.content for ch in conv.stream("Name another."))
    assert first.content.strip() and streamed.strip()
    rows = query(tmp_path / "logs.db", limit=None)
    assert [r["prompt"] for r in rows] == ["Name a colour.", "Name another."]
    assert rows[0]["response"] == first.content and rows[1]["response"] == streamed
    assert rows[0]["conversation_id"] == rows[1]["conversation_id"] == conv.cid
    assert [m["content"] for m in rows[1]["messages"]] == [
        "You are terse.",
        "Name a colour.",
        first.content,
        "Name another.",
    ]
    assert rows[0]["output_tokens"] > 0 and rows[0]["model"]
    assert [r["id"] for r in query(tmp_path / "logs.db", search="colour")] == [rows[0]["id"]]


def test_structured_output_comes_back_parsed(llama_server: str, tmp_path: Path) -> None:
    import pydantic

    class City(pydantic.BaseModel):
        name: str
        population: int

    with llmcore.Client(parse_config(config_text(llama_server, tmp_path))) as c:
        got = c.chat(
            "Give a city and its population as JSON.",
            schema=City,
            temperature=0.0,
            seed=7,
            max_tokens=60,
        )
        data = c.chat(
            "Say yes or no.",
            schema={
                "type": "object",
                "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}},
                "required": ["answer"],
            },
            temperature=0.0,
            seed=7,
            max_tokens=30,
        )
    assert isinstance(got, City) and isinstance(got.population, int)
    assert data["answer"] in ("yes", "no")
    rows = query(tmp_path / "logs.db", limit=None)
    assert rows[-1]["schema"]["required"] == ["answer"]


def test_chat_log_continue_and_logs_cli(llama_server: str, tmp_path: Path) -> None:
    cfg = tmp_path / "llmcore.yaml"
    cfg.write_text(config_text(llama_server, tmp_path).replace("enabled: true", "enabled: false"))
    run = [sys.executable, "-m", "llmcore", "--config", str(cfg)]
    env = {**os.environ, "NO_COLOR": "1"}
    opts = ["--temperature", "0", "--max-tokens", "8"]
    first = subprocess.run(
        [*run, "chat", "--log", *opts, "Count to three."],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert first.returncode == 0, first.stderr
    second = subprocess.run(
        [*run, "chat", "-c", "--json", *opts, "And to four?"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert second.returncode == 0, second.stderr
    logs = json.loads(
        subprocess.run(
            [*run, "logs", "--json", "-c"], capture_output=True, text=True, timeout=120, env=env
        ).stdout
    )
    entries = logs["entries"]
    assert [e["prompt"] for e in entries] == ["Count to three.", "And to four?"]
    assert entries[1]["messages"][1]["content"] == entries[0]["response"]
    assert json.loads(second.stdout)["conversation_id"] == entries[0]["conversation_id"]
