"""``llmcore install`` and ``llmcore uninstall``: plugins by short name, into this environment.

``llmcore install aider`` installs ``llmcore-plugin-aider`` into the Python environment that
runs llmcore (``sys.executable``), with uv when it is on ``PATH`` (``uv pip --python``) and
pip otherwise; ``LLMCORE_INSTALLER=pip|uv`` picks one. Neither command loads a plugin or reads
the configuration, so a plugin that breaks start-up can always be removed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click

from ..errors import LLMCoreError
from ..plugins import CORE_DISTRIBUTION
from .group import cli

PREFIX = "llmcore-plugin-"
INSTALLER_ENV = "LLMCORE_INSTALLER"

# A requirement: a name, optional extras, optional version specifier (``aider>=0.1``).
_REQ = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*((?:[=<>!~]=?|===).*)?$")


class InstallError(LLMCoreError):
    """The installer could not be run, or did not succeed."""


def is_path(spec: str) -> bool:
    """A local project directory, wheel or sdist rather than a name on an index."""
    return (
        spec.startswith((".", "/", "~"))
        or os.sep in spec
        or spec.endswith((".whl", ".tar.gz", ".zip"))
        or Path(spec).is_dir()
    )


def distribution_name(name: str) -> str:
    """``aider`` → ``llmcore-plugin-aider``; ``llmcore`` → the core's distribution name (the
    index's ``llmcore`` is another project); full names (``llmcore-…``) are kept as they are."""
    n = name.strip().lower().replace("_", "-")
    if n == "llmcore":
        return CORE_DISTRIBUTION
    if n.startswith("llmcore-"):
        return n
    return PREFIX + n


def requirement(spec: str) -> str:
    """What to hand the installer for one argument of ``llmcore install``."""
    if is_path(spec):
        return str(Path(spec).expanduser().resolve())
    m = _REQ.match(spec.strip())
    if not m:
        raise InstallError(
            f"{spec!r} is neither a plugin name nor a path",
            hint="give a short name (aider), a distribution name (llmcore-plugin-aider), "
            "a version (aider>=0.1) or a local path (./plugins/llmcore-plugin-aider)",
        )
    name, extras, version = m.groups()
    return distribution_name(name) + (extras or "") + (version or "").replace(" ", "")


def installer() -> tuple[str, list[str]]:
    """``(kind, command prefix)`` of the tool that installs into ``sys.executable``'s env."""
    choice = os.environ.get(INSTALLER_ENV, "").strip().lower()
    if choice not in ("", "pip", "uv"):
        raise InstallError(f"{INSTALLER_ENV}={choice!r}: must be pip or uv")
    uv = shutil.which("uv")
    if choice == "uv" or (choice == "" and uv):
        if not uv:
            raise InstallError(
                f"{INSTALLER_ENV}=uv but uv is not on PATH",
                hint="pip install uv, or unset " + INSTALLER_ENV,
            )
        return "uv", [uv, "pip"]
    probe = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True)
    if probe.returncode != 0:
        raise InstallError(
            f"neither uv nor pip is available for {sys.executable}",
            hint=f"install uv (https://docs.astral.sh/uv/) or run `{sys.executable} -m ensurepip`",
        )
    return "pip", [sys.executable, "-m", "pip"]


def _run(verb: str, args: list[str]) -> None:
    kind, prefix = installer()
    if kind == "uv":
        cmd = [*prefix, verb, "--python", sys.executable, *args]
    else:
        cmd = [*prefix, verb, *(["-y"] if verb == "uninstall" else []), *args]
    click.echo("$ " + " ".join(cmd), err=True)
    code = subprocess.call(cmd)
    if code != 0:
        raise InstallError(f"{verb} failed (exit {code}); the installer's output is above")


def _installed() -> dict[str, str]:
    import importlib
    import importlib.metadata as md

    importlib.invalidate_caches()
    out: dict[str, str] = {}
    for dist in md.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name:
            out[name] = dist.version
    return out


def _plugins() -> dict[str, str]:
    """Installed distributions with an ``llmcore`` entry point, without importing any."""
    import importlib

    from ..plugins import installed_distributions

    importlib.invalidate_caches()
    return dict(installed_distributions())


@cli.command()
@click.argument("names", nargs=-1, required=True)
@click.option("-U", "--upgrade", is_flag=True, help="Upgrade to the newest version.")
@click.option("-e", "--editable", is_flag=True, help="Install local paths in editable mode.")
@click.option(
    "--find-links",
    "-f",
    multiple=True,
    metavar="DIR_OR_URL",
    help="Also look for packages here (a folder of wheels).",
)
@click.option("--no-index", is_flag=True, help="Do not use the package index.")
@click.option("--pre", is_flag=True, help="Allow pre-release versions.")
@click.option(
    "--pip-arg", multiple=True, metavar="ARG", help="Pass ARG to the installer as is (repeatable)."
)
def install(
    names: tuple[str, ...],
    upgrade: bool,
    editable: bool,
    find_links: tuple[str, ...],
    no_index: bool,
    pre: bool,
    pip_arg: tuple[str, ...],
) -> None:
    """Install plugins by short name (aider → llmcore-plugin-aider) or from local paths.

    Installs into the environment llmcore runs in, with uv when present, else pip.
    `llmcore plugins` shows them right after.
    """
    reqs = [requirement(n) for n in names]
    if editable:
        not_paths = [n for n in names if not is_path(n)]
        if not_paths:
            raise InstallError(f"--editable needs local paths, got: {', '.join(not_paths)}")
    args: list[str] = []
    if upgrade:
        args.append("--upgrade")
    if no_index:
        args.append("--no-index")
    if pre:
        args.append("--pre")
    for link in find_links:
        args += [
            "--find-links",
            str(Path(link).expanduser().resolve()) if os.path.exists(link) else link,
        ]
    args += list(pip_arg)
    for r in reqs:
        args += ["-e", r] if editable else [r]
    before = _plugins()
    _run("install", args)
    changed = [(n, v) for n, v in sorted(_plugins().items()) if before.get(n) != v]
    for name, version in changed:
        click.echo(f"installed {name} {version}")
    if not changed:
        click.echo("no plugin was added or changed version")
    click.echo("see them with: llmcore plugins")


@cli.command()
@click.argument("names", nargs=-1, required=True)
def uninstall(names: tuple[str, ...]) -> None:
    """Remove plugins by short name (aider → llmcore-plugin-aider).

    Never loads a plugin or reads the config, so it works even when every plugin is broken.
    """
    dists = [distribution_name(n) for n in names]
    if CORE_DISTRIBUTION in dists:
        raise InstallError(
            "refusing to uninstall llmcore itself from llmcore",
            hint=f"run `{sys.executable} -m pip uninstall {CORE_DISTRIBUTION}`",
        )
    present = _installed()
    missing = [d for d in dists if d not in present]
    if missing:
        plugins = sorted(n for n in present if n.startswith(PREFIX))
        raise InstallError(
            f"not installed: {', '.join(missing)}",
            hint="installed plugins: " + (", ".join(plugins) or "none"),
        )
    _run("uninstall", dists)
    for d in dists:
        click.echo(f"removed {d} {present[d]}")
