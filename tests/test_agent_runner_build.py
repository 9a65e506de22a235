"""What the qwen, opencode and aider plugins start: flags per mode, endpoint settings, no key
on argv, the prompt as one token that cannot be a flag."""

from __future__ import annotations

import json
from typing import Any

import llmcore
import pytest
from llmcore.config import AgentConfig
from llmcore.types import AgentTask
from llmcore_aider import AiderAgent
from llmcore_opencode import OpenCodeAgent
from llmcore_qwen import QwenAgent

KEY = "sk-build-test-0123456789abcdef"


def make(cls: Any, **cfg: Any) -> Any:
    return cls(AgentConfig(name=cls.type_name, plugin=cls.type_name, command="/bin/true", **cfg))


def task(mode: str, tmp: Any, **kw: Any) -> AgentTask:
    return AgentTask(prompt="-rf --help", cwd=str(tmp), mode=mode, **kw)


@pytest.mark.parametrize(
    ("mode", "flag"),
    [
        ("read_only", "plan"),
        ("suggest", "default"),
        ("auto_edit", "auto-edit"),
        ("full_auto", "yolo"),
    ],
)
def test_qwen_modes(mode: str, flag: str, tmp_path: Any) -> None:
    inv = make(QwenAgent).build(task(mode, tmp_path))
    assert inv.argv[inv.argv.index("--approval-mode") + 1] == flag
    assert inv.argv[-1] == "--prompt=-rf --help"
    assert "--auth-type" not in inv.argv and "HOME" not in inv.env


def test_qwen_endpoint_goes_to_env_and_a_private_home(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_KEY", KEY)
    agent = make(QwenAgent, base_url="http://127.0.0.1:9/v1", api_key_env="MY_KEY")
    inv = agent.build(task("auto_edit", tmp_path, model="m1", resume="abc"))
    assert inv.env["OPENAI_BASE_URL"] == "http://127.0.0.1:9/v1"
    assert inv.env["OPENAI_API_KEY"] == KEY and KEY not in " ".join(inv.argv)
    assert inv.env["HOME"].endswith("agents/qwen/home") and inv.env["QWEN_CODE_NO_RELAUNCH"]
    assert inv.argv[inv.argv.index("--auth-type") :][:2] == ["--auth-type", "openai"]
    assert inv.argv[inv.argv.index("-m") :][:2] == ["-m", "m1"]
    assert inv.argv[inv.argv.index("--resume") :][:2] == ["--resume", "abc"]


@pytest.mark.parametrize("mode", ["read_only", "suggest", "auto_edit", "full_auto"])
def test_opencode_modes_and_endpoint(
    mode: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_KEY", KEY)
    agent = make(OpenCodeAgent, base_url="http://127.0.0.1:9/v1", api_key_env="MY_KEY")
    inv = agent.build(task(mode, tmp_path, model="m1"))
    assert inv.argv[-2:] == ["--", "-rf --help"]
    cfg = json.loads(inv.env["OPENCODE_CONFIG_CONTENT"])
    assert cfg["provider"]["llmcore"]["options"]["baseURL"] == "http://127.0.0.1:9/v1"
    assert cfg["model"] == "llmcore/m1" and inv.env["LLMCORE_OPENCODE_KEY"] == KEY
    assert KEY not in " ".join(inv.argv) and KEY not in inv.env["OPENCODE_CONFIG_CONTENT"]
    edits = cfg["permission"]["edit"] == "allow"
    assert edits == (mode in ("auto_edit", "full_auto"))
    assert ("--auto" in inv.argv) == edits
    assert (cfg["permission"]["bash"] == "allow") == (mode == "full_auto")
    assert ("plan" in inv.argv) == (mode == "read_only")


@pytest.mark.parametrize(
    ("mode", "flag"),
    [
        ("read_only", "ask"),
        ("suggest", "--dry-run"),
        ("auto_edit", "--no-suggest-shell-commands"),
        ("full_auto", None),
    ],
)
def test_aider_modes_and_endpoint(
    mode: str, flag: str | None, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_KEY", KEY)
    agent = make(
        AiderAgent,
        base_url="http://127.0.0.1:9/v1",
        api_key_env="MY_KEY",
        options={"files": ["-weird.py"]},
    )
    inv = agent.build(task(mode, tmp_path, model="m1"))
    if flag:
        assert flag in inv.argv
    if mode == "full_auto":
        assert "--no-suggest-shell-commands" not in inv.argv
    assert "--no-auto-commits" in inv.argv
    assert "--message=-rf --help" in inv.argv
    assert inv.argv[-2:] == ["--", "-weird.py"]  # files after "--": never flags
    assert inv.argv[inv.argv.index("--model") :][:2] == ["--model", "openai/m1"]
    assert inv.env["AIDER_OPENAI_API_KEY"] == KEY and KEY not in " ".join(inv.argv)
    assert inv.meta["session"] and inv.meta["session"] in " ".join(inv.argv)


def test_unknown_mode_and_bad_resume_are_clear_errors(tmp_path: Any) -> None:
    with pytest.raises(llmcore.ConfigError, match="unknown mode"):
        make(QwenAgent).build(task("yolo", tmp_path))
    with pytest.raises(llmcore.AgentError, match="not an Aider session id"):
        make(AiderAgent).build(task("auto_edit", tmp_path, resume="../../etc/passwd"))
