"""Zero config that works: no llmcore.yaml, fakes behaving like a freshly installed Ollama
(with a few pulled models), an LM Studio and a vLLM; `llmcore chat "hi"` answers from the
model the rule picks, and says which. One model-name rule for Ollama (`x` == `x:latest`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llmcore.client import Client
from llmcore.config import Config, parse_config
from llmcore.registry import model_name
from llmcore.router.choice import chat_capable, pick
from llmcore.runtime import Runtime, zero_config_url
from llmcore.testing.fakes.ollama import OllamaFake
from llmcore.testing.fakes.openai import LMStudioFake, VLLMFake
from llmcore.types import ChatRequest, ModelInfo


@pytest.fixture()
def servers() -> Iterator[tuple[OllamaFake, LMStudioFake, VLLMFake]]:
    with OllamaFake() as ollama, LMStudioFake() as lmstudio, VLLMFake() as vllm:
        yield ollama, lmstudio, vllm


def _env(tmp_path: Path, ollama: OllamaFake, lmstudio: Any, vllm: Any) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "LLMCORE_CONFIG" and not k.startswith(("LLMCORE_", "OLLAMA_"))
    }
    host = ollama.url.removeprefix("http://")
    env.update(
        {
            "HOME": str(tmp_path),
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "XDG_STATE_HOME": str(tmp_path / "state"),
            "XDG_DATA_HOME": str(tmp_path / "data"),
            "OLLAMA_HOST": host,  # Ollama's own variable: host:port
            "LLMCORE_LMSTUDIO_URL": lmstudio.base_url,
            "LLMCORE_VLLM_URL": vllm.base_url,
        }
    )
    return env


def _llmcore(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmcore", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )


def test_chat_with_no_config_answers_from_ollama_and_names_the_model(
    tmp_path: Path, servers: Any
) -> None:
    ollama, lmstudio, _ = servers
    env = _env(tmp_path, *servers)
    out = _llmcore(tmp_path, env, "chat", "--json", "hi")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["provider"] == "ollama"  # the local server most people run: first
    # Nothing loaded, no default configured: the largest chat model; never the embedder.
    assert data["model"] == "llava:latest"
    assert data["attempts"] == [pytest.approx(data["attempts"][0])]
    assert data["attempts"][0]["model"] == "llava:latest" and data["attempts"][0]["ok"]
    chats = [r for r in ollama.requests if r.path == "/api/chat"]
    assert len(chats) == 1 and chats[0].json["model"] == "llava:latest"
    assert lmstudio.requests == [] or all("/chat" not in r.path for r in lmstudio.requests)
    # A model already in memory wins: no load time.
    ollama.loaded.clear()  # (the chat above loaded llava)
    ollama.loaded["qwen3:0.6b"] = "2099-01-01T00:00:00Z"
    out = _llmcore(tmp_path, env, "chat", "--json", "hi")
    assert json.loads(out.stdout)["model"] == "qwen3:0.6b", out.stderr


def test_ollama_down_lm_studio_answers_with_a_model_it_lists(tmp_path: Path, servers: Any) -> None:
    ollama, lmstudio, _ = servers
    env = _env(tmp_path, *servers)
    ollama.stop()
    out = _llmcore(tmp_path, env, "chat", "--json", "hi")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["provider"] == "lmstudio"
    assert data["model"] in lmstudio.models
    chat = [r for r in lmstudio.requests if r.path == "/v1/chat/completions"]
    assert chat and chat[0].json["model"] == data["model"]  # never "model": null
    assert [a["provider"] for a in data["attempts"]] == ["ollama", "lmstudio"]
    assert data["attempts"][0]["error_type"] == "ProviderConnectionError"


def test_vllm_answers_from_v1_models_when_the_others_are_down(tmp_path: Path, servers: Any) -> None:
    ollama, lmstudio, vllm = servers
    env = _env(tmp_path, *servers)
    ollama.stop()
    lmstudio.stop()
    out = _llmcore(tmp_path, env, "chat", "--json", "hi")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["provider"] == "vllm" and data["model"] == vllm.models[0]
    assert [a["provider"] for a in data["attempts"]] == ["ollama", "lmstudio", "vllm"]


def test_embeddings_never_use_the_chosen_chat_model(servers: Any) -> None:
    ollama, _, _ = servers
    cfg = parse_config(
        f"providers: {{o: {{plugin: ollama, base_url: '{ollama.url}', "
        "embed_model: nomic-embed-text}}\n"
        "agents: {}\nmetrics: {sinks: []}\nrouting: {state: memory}\n"
    )
    client = Client(cfg)
    assert client.chat("hi").model == "llava:latest"
    resp = client.embed("hello")
    assert resp.vectors and "nomic-embed-text" in (resp.model or "")
    client.close()


def test_zero_config_order_puts_ollama_first() -> None:
    rt = Runtime(Config())
    order = list(rt.provider_configs())
    assert order[0] == "ollama"
    assert order.index("lmstudio") < order.index("vllm")


def test_ollama_host_forms() -> None:
    env = dict(os.environ)
    try:
        os.environ["OLLAMA_HOST"] = "10.0.0.5"
        assert zero_config_url("ollama") == "http://10.0.0.5:11434"
        os.environ["OLLAMA_HOST"] = "https://ollama.example:443/"
        assert zero_config_url("ollama") == "https://ollama.example:443"
        assert zero_config_url("vllm") is None
    finally:
        os.environ.clear()
        os.environ.update(env)


def test_the_pick_rule() -> None:
    def m(
        name: str, caps: list[str], size: str | None = None, loaded: bool | None = None
    ) -> ModelInfo:
        return ModelInfo(name=name, capabilities=caps, parameter_size=size, loaded=loaded)

    embed = m("nomic-embed-text:latest", ["embedding"], "137M")
    big_embed = m("text-embedding-3-large", [], None)
    small, large = m("qwen3:0.6b", ["completion"], "751M"), m("llama3.1:70b", [], None)
    assert not chat_capable(embed) and not chat_capable(big_embed)
    assert pick([embed, small, large], None, "ollama") == "llama3.1:70b"
    assert pick([embed, small, large], "qwen3:0.6b", "ollama") == "qwen3:0.6b"
    assert pick([embed, small, m("x:7b", [], loaded=True)], "qwen3:0.6b", "ollama") == "x:7b"
    assert pick([embed], None, "ollama") is None  # an embedder never answers a chat


def test_one_model_name_rule_for_ollama() -> None:
    assert model_name("llama3.2", "ollama") == "llama3.2:latest"
    assert model_name("llama3.2:latest", "ollama") == "llama3.2:latest"
    assert model_name("hf.co/org/model", "ollama") == "hf.co/org/model:latest"
    assert model_name("llama3.2", "openai") == "llama3.2"


def test_require_vision_finds_llava_latest_after_a_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with OllamaFake() as ollama:
        cfg = parse_config(f"""
providers:
  local: {{plugin: ollama, base_url: '{ollama.url}',
          models: [llama3.2, llava, qwen3:0.6b], largest_first: true}}
agents: {{}}
metrics: {{sinks: []}}
routing: {{state: memory}}
""")
        client = Client(cfg)
        from llmcore.registry import get_registry

        get_registry(cfg).sync(client.runtime.providers, force=True)
        plan = client.router.candidates(ChatRequest(messages=[]), require=["vision"])
        assert [(c.name, c.model) for c in plan] == [("local", "llava")]
        resp = client.chat("what is in this picture?", require=["vision"])
        assert resp.model in ("llava", "llava:latest")
        # largest_first compares sizes by the one name: llava (7B) > llama3.2 (3.2B) > qwen3.
        plan = client.router.candidates(ChatRequest(messages=[]))
        assert [c.model for c in plan] == ["llava", "llama3.2", "qwen3:0.6b"]
        # The cooldown key is the one name: llama3.2 and llama3.2:latest share it.
        keys = {c.model_key for c in plan}
        assert "local/llava:latest" in keys and "local/llama3.2:latest" in keys
        client.close()


def test_models_refresh_forgets_the_cached_choice(servers: Any) -> None:
    ollama, _, _ = servers
    cfg = parse_config(
        f"providers: {{o: {{plugin: ollama, base_url: '{ollama.url}'}}}}\n"
        "agents: {}\nmetrics: {sinks: []}\nrouting: {state: memory}\n"
    )
    client = Client(cfg)
    assert client.chat("hi").model == "llava:latest"
    # Cached for its TTL: the server's list is not asked again per request ...
    tags = sum(r.path == "/api/tags" for r in ollama.requests)
    client.chat("hi")
    assert sum(r.path == "/api/tags" for r in ollama.requests) == tags
    # ... until asked again: Client.models(refresh=True) re-chooses at once.
    del ollama.catalog["llava:latest"]
    ollama.loaded.clear()
    client.models(refresh=True)
    assert client.chat("hi").model == "llama3.2:latest"
    # A model that vanished under the cache fails once with the server's clear error, and
    # that invalidates the choice: the next request picks again.
    del ollama.catalog["llama3.2:latest"]
    ollama.loaded.clear()
    from llmcore.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match=r"llama3\.2"):
        client.chat("hi")
    assert client.chat("hi").model == "qwen3:0.6b"
    client.close()


async def test_async_chat_lists_models_off_the_event_loop(servers: Any) -> None:
    import threading

    from llmcore.client import AsyncClient

    ollama, _, _ = servers
    cfg = parse_config(
        f"providers: {{o: {{plugin: ollama, base_url: '{ollama.url}'}}}}\n"
        "agents: {}\nmetrics: {sinks: []}\nrouting: {state: memory}\n"
    )
    client = AsyncClient(cfg)
    p = client.runtime.providers["o"]
    loop_thread = threading.get_ident()
    seen: list[int] = []
    real = p.models

    def models() -> Any:
        seen.append(threading.get_ident())
        return real()

    p.models = models  # type: ignore[method-assign]
    resp = await client.chat("hi")
    assert resp.model == "llava:latest"
    assert seen and loop_thread not in seen
    await client.aclose()
