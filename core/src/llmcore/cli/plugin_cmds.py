"""``llmcore plugin new``: write a ready-to-install plugin package from the shipped templates.

The templates live in ``llmcore/templates`` (package data, so they ship in the wheel). A
generated package has a ``pyproject.toml`` with the entry point, a module implementing the
hooks, a README with its config keys, and tests that pass as generated: the provider
contract suite against a fake server, or an agent run against a fake program.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import click

from .. import __version__
from ..errors import LLMCoreError
from ..hookspecs import HOOK_API_VERSION
from ..plugins import CORE_DISTRIBUTION
from .group import cli

_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")

#: template file -> path in the new package ({module} is filled in).
_FILES = {
    "provider": {
        "pyproject.toml.tmpl": "pyproject.toml",
        "provider/README.md.tmpl": "README.md",
        "provider/__init__.py.tmpl": "src/{module}/__init__.py",
        "provider/test_plugin.py.tmpl": "tests/test_{module}.py",
    },
    # A provider for an API with its own wire format: sans-IO wire module + fake server.
    "provider-custom": {
        "pyproject.toml.tmpl": "pyproject.toml",
        "provider_custom/README.md.tmpl": "README.md",
        "provider_custom/__init__.py.tmpl": "src/{module}/__init__.py",
        "provider_custom/wire.py.tmpl": "src/{module}/wire.py",
        "provider_custom/test_plugin.py.tmpl": "tests/test_{module}.py",
        "provider_custom/fake_server.py.tmpl": "tests/fake_server.py",
    },
    "agent": {
        "pyproject.toml.tmpl": "pyproject.toml",
        "agent/README.md.tmpl": "README.md",
        "agent/__init__.py.tmpl": "src/{module}/__init__.py",
        "agent/test_plugin.py.tmpl": "tests/test_{module}.py",
        "agent/fake_agent.py.tmpl": "tests/fake_agent.py",
    },
}


def llmcore_requirement(version: str = __version__) -> str:
    """``llmcore-framework>=0.1,<0.2``: this minor series, which keeps the hook API stable."""
    major, minor = (int(p) for p in version.split(".")[:2])
    if major == 0:
        return f"{CORE_DISTRIBUTION}>={major}.{minor},<{major}.{minor + 1}"
    return f"{CORE_DISTRIBUTION}>={major}.{minor},<{major + 1}"


def _hook_api_spec() -> str:
    """``>=1,<2``: the major hook API version this core offers, any minor of it."""
    major = int(HOOK_API_VERSION.split(".")[0])
    return f">={major},<{major + 1}"


def render_plugin(
    name: str,
    kind: str,
    directory: Path,
    *,
    summary: str | None = None,
    base_url: str = "http://127.0.0.1:8000/v1",
    wire: str = "openai",
) -> list[Path]:
    """Write the package for plugin ``name`` into ``directory``; returns the files written.

    ``wire`` (providers): ``openai`` builds on :class:`llmcore.OpenAIProvider`; ``custom``
    writes a sans-IO skeleton (a pure wire module, a fake server, the contract suite)."""
    name = name.strip().lower().removeprefix("llmcore-plugin-")
    if not _NAME.match(name):
        raise LLMCoreError(
            f"{name!r} is not a usable plugin name",
            hint="lower-case letters, digits and single dashes, starting with a letter "
            "(e.g. acme or acme-cloud)",
        )
    if kind not in ("provider", "agent"):
        raise LLMCoreError(f"unknown kind {kind!r}", hint="one of: provider, agent")
    if wire not in ("openai", "custom"):
        raise LLMCoreError(f"unknown wire format {wire!r}", hint="one of: openai, custom")
    if wire == "custom" and kind != "provider":
        raise LLMCoreError(
            "--wire custom is for providers",
            hint="an agent plugin runs a program; leave --wire out",
        )
    files = _FILES["provider-custom" if wire == "custom" else kind]
    if directory.exists() and any(directory.iterdir()):
        raise LLMCoreError(
            f"{directory} already exists and is not empty",
            hint="choose another --dir, or remove it first",
        )
    module = "llmcore_" + name.replace("-", "_")
    values = {
        "name": name,
        "dist": f"llmcore-plugin-{name}",
        "module": module,
        "class_name": "".join(part.capitalize() for part in name.split("-")),
        "env_prefix": name.upper().replace("-", "_"),
        "summary": summary or (f"the {name} {'provider' if kind == 'provider' else 'agent'}."),
        "base_url": base_url,
        "llmcore_requirement": llmcore_requirement(),
        "hook_api": _hook_api_spec(),
        "key_header": f"x-{name}-key",
    }
    root = resources.files("llmcore") / "templates"
    written: list[Path] = []
    for template, target in files.items():
        text = (root / template).read_text(encoding="utf-8")
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        path = directory / target.format(module=module)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


@cli.group()
def plugin() -> None:
    """Tools for plugin authors."""


@plugin.command("new")
@click.argument("name")
@click.option(
    "--kind",
    type=click.Choice(["provider", "agent"]),
    required=True,
    help="provider: an HTTP backend (OpenAI-compatible to start with); "
    "agent: a coding agent run as a program.",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    help="Where to write it (default: ./llmcore-plugin-NAME).",
)
@click.option("--description", help="One line saying what it is for.")
@click.option(
    "--base-url",
    default="http://127.0.0.1:8000/v1",
    show_default=True,
    help="Provider: the server's default base URL.",
)
@click.option(
    "--wire",
    type=click.Choice(["openai", "custom"]),
    default="openai",
    show_default=True,
    help="Provider: openai builds on the OpenAI-compatible client; custom writes a "
    "sans-IO skeleton for an API with its own wire format (request builder, "
    "parser, stream decoder, a fake server and the contract suite).",
)
def plugin_new(
    name: str, kind: str, directory: str | None, description: str | None, base_url: str, wire: str
) -> None:
    """Write a new plugin package NAME, ready to `pip install -e` and test."""
    short = name.strip().lower().removeprefix("llmcore-plugin-")
    target = Path(directory) if directory else Path.cwd() / f"llmcore-plugin-{short}"
    files = render_plugin(name, kind, target, summary=description, base_url=base_url, wire=wire)
    click.echo(f"wrote llmcore-plugin-{short} ({kind}) in {target}:")
    for f in files:
        click.echo(f"  {f.relative_to(target)}")
    click.echo(
        "next:\n"
        f"  cd {target}\n"
        "  pip install -e '.[test]'   # or: llmcore install --editable .\n"
        "  pytest\n"
        "  llmcore plugins           # shows it as loaded"
    )
