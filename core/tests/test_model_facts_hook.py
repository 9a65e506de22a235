"""A plugin prices its models through ``llmcore_register_model_facts``, without editing the
core's bundled data; the user's own registry file still wins; bad data fails the plugin,
never the request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import llmcore
import pytest
from llmcore.registry import get_registry
from llmcore.testing.fakes import OpenAIFake, Reply

FACTS = {
    "models": {
        "acme-large": {
            "aliases": ["acme-large-latest"],
            "context": 128000,
            "capabilities": ["chat", "tools"],
            "price": {"input": 2.0, "output": 8.0, "cached_input": 0.5},
        }
    }
}


class AcmeFacts:
    def __init__(self, facts: Any) -> None:
        self.facts = facts

    @llmcore.hookimpl
    def llmcore_register_model_facts(self) -> Any:
        return self.facts


@pytest.fixture
def fake() -> Iterator[OpenAIFake]:
    with OpenAIFake() as server:
        yield server


def config(fake: OpenAIFake, extra: str = "") -> str:
    return (
        f"providers:\n  acme:\n    plugin: openai\n    api_key: sk-x\n"
        f"    base_url: {fake.base_url}\n    models: [acme-large]\n"
        f"metrics:\n  enabled: false\n{extra}"
    )


def test_a_plugin_prices_its_models(make_client: Any, fake: OpenAIFake) -> None:
    fake.push(Reply(text="priced", model="acme-large", usage=(1_000_000, 100_000)))
    client = make_client(config(fake), AcmeFacts(FACTS))
    r = client.chat("hi")
    assert r.cost_usd == pytest.approx(2.0 + 0.8)
    entry = get_registry(client.runtime.config).info("acme-large-latest", "openai")
    assert entry is not None and entry.context_length == 128000
    assert entry.capabilities == ["chat", "tools"] and "plugin" in entry.sources


def test_the_users_registry_file_wins_over_a_plugin(
    make_client: Any, fake: OpenAIFake, tmp_path: Path
) -> None:
    own = tmp_path / "models.yaml"
    own.write_text("models:\n  acme-large:\n    price: {input: 1.0, output: 1.0}\n")
    fake.push(Reply(text="priced", model="acme-large", usage=(1_000_000, 1_000_000)))
    client = make_client(config(fake, f"registry:\n  path: {own}\n"), AcmeFacts(FACTS))
    assert client.chat("hi").cost_usd == pytest.approx(2.0)


def test_bad_facts_fail_the_plugin_not_the_request(make_client: Any, fake: OpenAIFake) -> None:
    fake.push(Reply(text="still answered", model="acme-large"))
    bad = AcmeFacts({"models": {"acme-large": {"prise": {"input": 1}}}})
    client = make_client(config(fake))
    client.runtime.pm.register(bad, name="acme-facts")
    r = client.chat("hi")
    assert r.content == "still answered" and r.cost_usd is None
    record = next(rec for rec in client.runtime.pm.records if rec.name == "acme-facts")
    assert record.status == "failed"
    assert "models.acme-large.prise: unknown key, did you mean price?" in (record.error or "")
