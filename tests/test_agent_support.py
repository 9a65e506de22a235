"""The helpers agent plugins share: llmcore.agent_support, Agent's endpoint/key/version
helpers, and the checks of llmcore.testing.agents."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import llmcore
import pytest
from llmcore.config import AgentConfig
from llmcore.testing.agents import check_resumed, check_run, expect_timeout, git_repo


class NpmAgent(llmcore.Agent):
    type_name = "npm-test"
    program = "npm-test"
    npm_package = "@acme/cli"


def npm_tree(tmp_path: Path, name: str = "@acme/cli", version: str = "1.2.3") -> Path:
    """node_modules/.bin/acme -> ../@acme/cli/bin/acme.js, like npm lays it out. The script
    itself fails if started, so a version read from it proves no process ran."""
    pkg = tmp_path / "node_modules" / "@acme" / "cli"
    (pkg / "bin").mkdir(parents=True)
    (pkg / "package.json").write_text(json.dumps({"name": name, "version": version}))
    script = pkg / "bin" / "acme.js"
    script.write_text("#!/bin/sh\necho 'started' >&2\nexit 3\n")
    script.chmod(0o755)
    (tmp_path / "node_modules" / ".bin").mkdir()
    link = tmp_path / "node_modules" / ".bin" / "acme"
    link.symlink_to(os.path.relpath(script, link.parent))
    return link


def test_npm_version_is_read_through_the_bin_symlink(tmp_path: Path) -> None:
    exe = npm_tree(tmp_path)
    assert llmcore.npm_package_version(str(exe), "@acme/cli") == "1.2.3"
    assert llmcore.npm_package_version(str(exe), "@other/cli") is None
    assert llmcore.npm_package_version(str(tmp_path / "missing"), "@acme/cli") is None


def test_agent_version_uses_the_npm_package_without_starting_it(tmp_path: Path) -> None:
    exe = npm_tree(tmp_path, version="9.8.7")
    agent = NpmAgent(AgentConfig(name="n", plugin="npm-test", command=str(exe)))
    assert agent.version() == "9.8.7"


def test_agent_version_falls_back_to_the_program_when_the_package_differs(tmp_path: Path) -> None:
    exe = npm_tree(tmp_path, name="@someone/else")
    exe.resolve().write_text("#!/bin/sh\necho 'acme 4.5.6'\n")
    agent = NpmAgent(AgentConfig(name="n2", plugin="npm-test", command=str(exe)))
    assert agent.version() == "4.5.6"


def test_home_env_and_url_suffix() -> None:
    home = Path("/h")
    assert llmcore.home_env(home) == {"HOME": "/h"}
    xdg = llmcore.home_env(home, xdg=True)
    assert xdg["XDG_CONFIG_HOME"] == "/h/.config" and xdg["XDG_CACHE_HOME"] == "/h/.cache"
    assert llmcore.strip_url_suffix("http://x/v1/") == "http://x"
    assert llmcore.strip_url_suffix("http://x/v1beta", ("/v1beta", "/v1")) == "http://x"
    assert llmcore.strip_url_suffix("http://x/api") == "http://x/api"


def test_endpoint_home_and_required_key(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = NpmAgent(AgentConfig(name="plain", plugin="npm-test"))
    assert not plain.endpoint_configured() and plain.endpoint_home() is None
    assert plain.endpoint_home("~/mine") == Path("~/mine").expanduser()

    monkeypatch.delenv("ACME_TEST_KEY", raising=False)
    agent = NpmAgent(
        AgentConfig(
            name="ep", plugin="npm-test", base_url="http://127.0.0.1:9", api_key_env="ACME_TEST_KEY"
        )
    )
    home = agent.endpoint_home(subdir=".acme")
    assert home is not None and home.name == ".acme" and home.parent == agent.private_home()
    with pytest.raises(llmcore.AgentError) as info:
        agent.require_api_key(hint="or log in")
    assert "ACME_TEST_KEY" in str(info.value)
    assert info.value.hint == "export ACME_TEST_KEY=<your key>, or log in"
    assert agent.require_api_key({"ACME_TEST_KEY": "from-task-env"}) == "from-task-env"
    monkeypatch.setenv("ACME_TEST_KEY", "from-environment")
    assert agent.require_api_key({"ACME_TEST_KEY": "from-task-env"}) == "from-environment"


def test_git_repo_commits_its_files(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "r", {"a/b.txt": "x\n"})
    listed = subprocess.run(
        ["git", "ls-files"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.split()
    assert listed == ["a/b.txt"]
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout
    assert status == ""


def test_agent_repo_fixture_is_a_clean_repository(agent_repo: Path) -> None:
    assert (agent_repo / ".git").is_dir() and (agent_repo / "README.md").is_file()


def test_run_checks_catch_what_they_are_for() -> None:
    ok = llmcore.AgentResult(
        agent="a",
        success=True,
        output="done",
        files_modified=["f"],
        exit_code=0,
        usage=llmcore.Usage(input_tokens=3, output_tokens=2),
        session_id="s1",
    )
    check_run(ok, files=["f"], output="done", usage=(3, 2))
    with pytest.raises(AssertionError):
        check_run(ok, files=["g"])
    with pytest.raises(AssertionError):
        check_run(ok, files=["f"], usage=(3, 3))
    with pytest.raises(AssertionError):
        check_resumed(llmcore.AgentResult(agent="a", success=True, session_id="other"), ok)
    with pytest.raises(pytest.fail.Exception):  # raised nothing: not a timeout
        expect_timeout(lambda: None, within=5)
