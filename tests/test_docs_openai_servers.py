"""Every example config of docs/guide/openai-compatible.md parses with the real parser and
answers a chat through the core `openai` type against the fake OpenAI server (its
base_url pointed at the fake, its key variable set)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from llmcore.client import Client
from llmcore.config import parse_config
from llmcore.testing.fakes.openai import OpenAIFake

PAGE = Path(__file__).resolve().parents[1] / "docs" / "guide" / "openai-compatible.md"
BLOCKS = re.findall(r"^```yaml\n(.*?)^```", PAGE.read_text(encoding="utf-8"), re.S | re.M)
NAMES = [next(iter(yaml.safe_load(b)["providers"])) for b in BLOCKS]


def test_the_page_covers_the_servers_the_seeds_name() -> None:
    assert {"localai", "groq", "together", "mlx", "lmstudio-openai", "llamacpp"} <= set(NAMES)


@pytest.mark.parametrize("block", BLOCKS, ids=NAMES)
def test_each_example_answers_against_the_fake(block: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = parse_config(block, source=str(PAGE))  # as written, with the real parser
    name, p = next(iter((cfg.providers or {}).items()))
    assert p.plugin == "openai" and p.base_url
    key = "sk-docs-test-0123456789abcdef"
    if p.api_key_env:
        monkeypatch.setenv(p.api_key_env, key)
    monkeypatch.setenv("GATEWAY_KEY", key)
    with OpenAIFake() as fake:
        fake.models = [*(p.models or []), "nomic-embed-text-v1.5", "served-model-7b"]
        text = block.replace(p.base_url, fake.base_url)
        text += "agents: {}\nmetrics: {sinks: []}\nrouting: {state: memory}\n"
        client = Client(parse_config(text))
        resp = client.chat("hi")
        assert resp.provider == name and resp.content == "Hello from the fake server."
        sent = next(r for r in fake.requests if r.path.endswith("/chat/completions"))
        # A model is always sent: the configured one, or the one picked from /v1/models
        # (the largest chat model, never the embedder), never "model": null.
        expected = p.models[0] if p.models else "served-model-7b"
        assert sent.json["model"] == expected and resp.model == expected
        headers = {k.lower(): v for k, v in sent.headers.items()}
        if p.api_key_env:
            assert headers.get("authorization") == f"Bearer {key}"
        if "headers" in p.options:
            assert headers.get("api-key") == key
        client.close()
