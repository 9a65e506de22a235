"""CLI basics: version, errors on stderr without traceback, --debug, options anywhere."""

from __future__ import annotations

from pathlib import Path

from core_support import run_cli


def test_version_lists_core_and_plugins() -> None:
    out = run_cli("--version")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert lines[0].startswith("llmcore ")
    assert any(line.strip().startswith("llmcore-plugin-aider ") for line in lines[1:])


def test_errors_have_no_traceback_unless_debug(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("routing: [not, a, mapping]\n")
    plain = run_cli("providers", "--config", str(cfg))  # --config after the command works too
    assert plain.returncode == 2
    assert plain.stderr.startswith("error: ") and "routing" in plain.stderr
    assert "Traceback" not in plain.stderr
    debug = run_cli("--debug", "--config", str(cfg), "providers")
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_help_lists_the_commands() -> None:
    out = run_cli("--help")
    assert out.returncode == 0
    for command in ("plugins", "providers", "config"):
        assert command in out.stdout
