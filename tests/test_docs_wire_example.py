"""The docs' complete wire-format provider passes the whole provider contract suite as the
page shows it, and the generated pages (that example, the data types reference) are up to
date with the code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging_support import ROOT

DOCS = ROOT / "docs"


def _generator(name: str) -> Any:
    sys.path.insert(0, str(DOCS))
    try:
        import importlib

        return importlib.import_module(name)
    finally:
        sys.path.remove(str(DOCS))


@pytest.mark.parametrize("name", ["gen_wire_example", "gen_types"])
def test_generated_pages_are_up_to_date(name: str) -> None:
    gen = _generator(name)
    assert gen.PAGE.read_text(encoding="utf-8") == gen.render(), (
        f"{gen.PAGE.relative_to(ROOT)} is out of date: run `python docs/{name}.py`"
    )


def test_the_example_on_the_page_passes_the_contract_suite(tmp_path: Path) -> None:
    page = (DOCS / "plugins" / "wire-example.md").read_text(encoding="utf-8")
    blocks = re.findall(r'^```python title="([^"]+)"\n(.*?)^```', page, re.S | re.M)
    assert {name for name, _ in blocks} == {
        "src/llmcore_acme/wire.py",
        "src/llmcore_acme/__init__.py",
        "tests/fake_server.py",
        "tests/test_llmcore_acme.py",
    }
    for name, body in blocks:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\ntestpaths = ["tests"]\npythonpath = ["src"]\n'
    )
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "skipped" not in out.stdout
    ran = out.stdout
    for test in (
        "test_chat_returns_content_usage_finish_reason",
        "test_request_options_reach_the_server",
        "test_api_key_is_sent_and_never_leaks",
        "test_stream_cut_midway_raises_never_a_short_answer",
        "test_hostile_server",
    ):
        assert f"::{test}" in ran, f"the contract's {test} did not run"


def test_the_tool_call_shape_on_the_page_is_what_providers_return() -> None:
    """The reference shows the shape the core's OpenAI provider really produces."""
    import llmcore
    from llmcore.config import ProviderConfig
    from llmcore.testing.fakes import OpenAIFake, Reply

    shown = _generator("gen_types").TOOL_CALL
    with OpenAIFake() as fake:
        fake.push(
            Reply(
                text="",
                tool_calls=[{"name": "get_weather", "id": "call_1", "arguments": {"city": "Oslo"}}],
            )
        )
        p = llmcore.OpenAIProvider(
            ProviderConfig(name="o", plugin="openai", base_url=fake.base_url, models=["m"])
        )
        try:
            [call] = (
                p.chat(llmcore.ChatRequest(messages=[llmcore.Message("user", "x")])).tool_calls
                or []
            )
        finally:
            p.close()
    assert set(call) == set(shown) and set(call["function"]) == set(shown["function"])
    assert isinstance(call["function"]["arguments"], str)
    assert call["type"] == "function"
