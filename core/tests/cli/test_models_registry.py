"""``llmcore models`` completes what providers report from the registry, filters by
capability, and ``--refresh`` asks the providers again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from llmcore.testing.fakes import OpenAIFake, VLLMFake


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmcore", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )


class TwoModels(OpenAIFake):
    models = ["gpt-4o-mini", "text-embedding-3-small"]


def test_registry_fills_context_and_capabilities_and_filters(tmp_path: Path) -> None:
    with TwoModels() as fake:
        cfg = tmp_path / "llmcore.yaml"
        cfg.write_text(
            f"providers:\n  hosted:\n    plugin: openai\n"
            f"    base_url: {fake.base_url}\n    api_key: sk-test-key-000000000000\n"
        )
        out = cli(cfg, "models", "--json")
        assert out.returncode == 0, out.stderr
        got = {m["name"]: m for m in json.loads(out.stdout)}
        assert got["gpt-4o-mini"]["context_length"] == 128000
        assert "vision" in got["gpt-4o-mini"]["capabilities"]
        assert got["text-embedding-3-small"]["capabilities"] == ["embedding"]
        vision = cli(cfg, "models", "--capability", "vision", "--json")
        assert [m["name"] for m in json.loads(vision.stdout)] == ["gpt-4o-mini"]
        both = cli(cfg, "models", "-c", "vision", "-c", "embedding", "--json")
        assert json.loads(both.stdout) == []


def test_refresh_asks_the_providers_again(tmp_path: Path) -> None:
    with VLLMFake() as fake:
        cfg = tmp_path / "llmcore.yaml"
        cfg.write_text(f"providers:\n  gpu:\n    plugin: vllm\n    base_url: {fake.base_url}\n")
        before = sum(r.path == "/v1/models" for r in fake.requests)
        first = cli(cfg, "models", "--refresh", "--json")
        assert first.returncode == 0, first.stderr
        # one listing for the refresh (registry sync), one for the table itself
        assert sum(r.path == "/v1/models" for r in fake.requests) - before == 2
        [model] = json.loads(first.stdout)
        assert model["context_length"] is not None  # vLLM's max_model_len
