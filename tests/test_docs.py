"""The docs site: it builds strictly, its generated pages match the code, and its examples run.

(docs/getting-started.md is run step by step by test_docs_getting_started.py.)
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import attrs
import click
import pytest
import yaml
from packaging_support import CORE, ROOT, built_dists, make_venv, pip_install, run_in, wheel
from workspace_plugins import PLUGINS

DOCS = ROOT / "docs"
EXAMPLE = DOCS / "examples" / "llmcore-plugin-openrouter"
MY_PAGES = [
    "index.md",
    "getting-started.md",
    "guide/providers-and-agents.md",
    "guide/python-api.md",
    "guide/deployment.md",
    "plugins/index.md",
    "plugins/provider.md",
    "plugins/agent.md",
    "plugins/testing.md",
    "plugins/publishing.md",
    "examples/llmcore-plugin-openrouter/README.md",
]


def _blocks(page: Path, lang: str) -> list[str]:
    return re.findall(
        rf"^```{lang}[^\n]*\n(.*?)^```", page.read_text(encoding="utf-8"), re.S | re.M
    )


def _generator(name: str) -> Any:
    sys.path.insert(0, str(DOCS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(DOCS))


def test_site_builds_strictly(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    site = tmp_path / "site"
    for page in (
        "getting-started",
        "reference/configuration",
        "reference/cli",
        "reference/plugin-options",
        "plugins/hooks",
        "guide/plugins/aider",
        "changelog",
        "examples/llmcore-plugin-openrouter",
    ):
        assert (site / page / "index.html").is_file(), f"{page} was not built"


@pytest.mark.parametrize("name", ["gen_hooks", "gen_config", "gen_cli"])
def test_generated_pages_are_up_to_date(name: str) -> None:
    gen = _generator(name)
    assert gen.PAGE.read_text(encoding="utf-8") == gen.render(), (
        f"{gen.PAGE.relative_to(ROOT)} is out of date: run `python docs/{name}.py`"
    )


def _config_sections() -> list[tuple[str, type]]:
    """Every attrs section of llmcore.yaml with its dotted path (computed independently)."""
    from llmcore import config as cfg

    out: list[tuple[str, type]] = []

    def walk(cls: type, path: str) -> None:
        out.append((path, cls))
        attrs.resolve_types(cls)
        for f in attrs.fields(cls):
            tp = f.type
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) == 1 and typing.get_origin(tp) is not dict:
                tp = args[0]
            sub = f"{path}.{f.name}".lstrip(".")
            if attrs.has(tp):
                walk(tp, sub)
            elif typing.get_origin(tp) is dict and attrs.has(typing.get_args(tp)[1]):
                walk(typing.get_args(tp)[1], sub + ".NAME")

    walk(cfg.Config, "")
    return out


def test_configuration_reference_lists_every_key() -> None:
    page = (DOCS / "reference" / "configuration.md").read_text(encoding="utf-8")
    sections = re.split(r"^### ", page, flags=re.M)
    by_heading = {s.splitlines()[0]: s for s in sections[1:]}
    for path, cls in _config_sections():
        heading = f"`{path}`" if path else "Top level"
        assert heading in by_heading, f"no section for {heading}"
        for f in attrs.fields(cls):
            if f.name in ("source", "lines", "sections"):
                continue
            assert f"| `{f.name}` |" in by_heading[heading], f"{path}.{f.name} is missing"
            row = next(
                r for r in by_heading[heading].splitlines() if r.startswith(f"| `{f.name}` |")
            )
            assert not row.endswith("|  |"), f"{path}.{f.name} has no description"


def test_cli_reference_lists_every_command_and_option() -> None:
    from llmcore.cli import cli

    page = (DOCS / "reference" / "cli.md").read_text(encoding="utf-8")

    is_core = _generator("gen_cli").is_core

    def walk(cmd: click.Command, path: str) -> None:
        assert f"`{path}`" in page, f"{path} is missing"
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden:
                assert p.opts[-1] in page, f"{path} {p.opts[-1]} is missing"
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                if is_core(sub):  # plugin commands are on the plugin's page
                    walk(sub, f"{path} {name}")

    walk(cli, "llmcore")


def test_every_plugin_has_a_page_in_the_nav() -> None:
    hooks = _generator("mkdocs_hooks")
    pages = hooks.plugin_pages()
    plugins = sorted(p.removeprefix("llmcore-plugin-") for p in PLUGINS)
    assert sorted(Path(p).stem for p in pages) == plugins
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for name in plugins:
        assert f"guide/plugins/{name}.md" in nav, f"{name}'s page is not in the nav"
        text = pages[f"guide/plugins/{name}.md"]
        readme = (ROOT / "plugins" / f"llmcore-plugin-{name}" / "README.md").read_text()
        assert text.startswith(readme.split("\n", 1)[0]), "the page is the plugin's README"
        assert f"llmcore install {name}" in text
        # Links relative to the README would break on the site: they point at the source.
        assert not re.search(r"\]\((?!https?:|#|/)[^)]+\)", text)


#: Every page written by hand (hooks.md shows bare signatures, not runnable code).
ALL_PAGES = sorted(
    p.relative_to(DOCS).as_posix()
    for p in DOCS.rglob("*.md")
    if p.relative_to(DOCS).as_posix() != "plugins/hooks.md"
)


def test_every_python_block_compiles() -> None:
    assert set(MY_PAGES) <= set(ALL_PAGES)
    for rel in ALL_PAGES:
        for i, code in enumerate(_blocks(DOCS / rel, "python")):
            try:
                ast.parse(code)
            except SyntaxError as exc:  # pragma: no cover - the message is the point
                pytest.fail(f"{rel}, python block {i + 1}: {exc}")


def test_every_yaml_config_block_is_valid() -> None:
    """A YAML block that is an llmcore.yaml must pass the real config parser.

    (A block meant to show a mistake starts with the comment ``# not valid``.)
    """
    from llmcore import config as cfg

    top = {f.name for f in attrs.fields(cfg.Config)} - {"source", "lines"}
    checked = 0
    for rel in ALL_PAGES:
        for code in _blocks(DOCS / rel, "yaml"):
            if code.startswith("# not valid"):
                continue
            data = yaml.safe_load(code)
            if isinstance(data, dict) and set(data) <= top:
                cfg.parse_config(code, source=rel)
                checked += 1
    assert checked >= 15


def test_python_api_examples_run(tmp_path: Path) -> None:
    """Every block of guide/python-api.md, against a fake OpenAI-compatible provider."""
    from llmcore.testing.fakes import OpenAIFake, Reply

    blocks = _blocks(DOCS / "guide" / "python-api.md", "python")
    assert len(blocks) >= 6
    with OpenAIFake(default=Reply(text="red, yellow and blue")) as fake:
        config = tmp_path / "llmcore.yaml"
        config.write_text(
            f"providers:\n  main:\n    plugin: openai\n"
            f"    base_url: {fake.base_url}\n    models: [fake-model]\n"
        )
        env = {**os.environ, "LLMCORE_CONFIG": str(config)}
        for i, code in enumerate(blocks):
            if "no-such-model" in code:  # the server says what a real one would
                fake.push(Reply(status=404, error="The model `no-such-model` does not exist"))
            script = tmp_path / f"block{i}.py"
            script.write_text(f"BASE_URL = {fake.base_url!r}\n" + code)
            out = subprocess.run(
                [sys.executable, str(script)],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert out.returncode == 0, f"block {i + 1}:\n{code}\n{out.stderr}"
            if "no-such-model" in code:
                assert "main ModelNotFoundError" in out.stdout, out.stdout
            elif "print(" in code and "chat(" in code:
                assert "red, yellow and blue" in out.stdout, f"block {i + 1}: {out.stdout}"
    sent = [r.json for r in fake.requests if r.json]
    assert any(b.get("temperature") == 0.2 and b.get("max_tokens") == 60 for b in sent)
    assert any(
        b["messages"][0] == {"role": "system", "content": "You are a terse poet."}
        for b in sent
        if "messages" in b
    )


def test_testing_guide_examples_pass(tmp_path: Path) -> None:
    """The test functions in plugins/testing.md pass, next to a plugin `plugin new` wrote."""
    from llmcore.cli.plugin_cmds import render_plugin

    render_plugin("acme", "provider", tmp_path / "acme")
    blocks = [
        b
        for b in _blocks(DOCS / "plugins" / "testing.md", "python")
        if "def test_" in b or "(ProviderContract):" in b
    ]
    tests = tmp_path / "tests"
    tests.mkdir()
    expected = 0
    for i, code in enumerate(blocks):
        (tests / f"test_guide_{i}.py").write_text(code)
        expected += len(re.findall(r"^(?:    )?def test_", code, re.M))
    # The contract class in the guide collects its whole suite too.
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(tests),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "acme" / "src")},
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    passed = int(re.search(r"(\d+) passed", out.stdout).group(1))  # type: ignore[union-attr]
    assert passed > expected >= 4, out.stdout[-500:]


def test_example_plugin_passes_its_tests() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=EXAMPLE,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "skipped" not in out.stdout


def test_example_plugin_installs_and_loads(tmp_path: Path) -> None:
    """The README's install command works in a fresh environment with the core's wheel."""
    python = make_venv(tmp_path / "venv")
    pip_install(python, wheel(built_dists(), CORE))
    out = run_in(python, "install", str(EXAMPLE), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    records = json.loads(run_in(python, "plugins", "--json", cwd=tmp_path).stdout)
    assert [(r["name"], r["status"]) for r in records] == [("llmcore-plugin-openrouter", "loaded")]
    (tmp_path / "llmcore.yaml").write_text(
        "providers:\n  router:\n    plugin: openrouter\n    app_nmae: typo\n"
    )
    out = run_in(python, "config", "validate", cwd=tmp_path)
    assert out.returncode == 2 and "did you mean app_name" in out.stderr
