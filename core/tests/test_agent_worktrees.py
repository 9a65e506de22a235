"""isolation: worktree — a branch per run, its diff, merge back, clean by policy, resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import llmcore
import pytest
from agent_env import git_repo, run_cli, script_agent, write_script
from llmcore.agent_worktrees import clean_runs, list_runs, merge_run
from llmcore.types import AgentTask

EDIT = """
    import json, os, sys
    prompt = sys.argv[-1]
    name, _, text = prompt.partition("=")
    os.makedirs(os.path.dirname(name) or ".", exist_ok=True)
    open(name, "w").write(text + "\\n")
    open(".agent-cache", "w").write("the agent's own file")
    print(json.dumps({"type": "result", "cwd": os.getcwd()}), flush=True)
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout


def _agent(tmp_path: Path, **kw: Any) -> Any:
    return script_agent(
        write_script(tmp_path, EDIT), isolation="worktree", ignored=(".agent-cache",), **kw
    )


def test_run_gets_its_own_branch_worktree_and_diff(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo", {"app.py": "print(1)\n"})
    head = git(repo, "rev-parse", "HEAD").strip()
    agent = _agent(tmp_path)
    result = agent.run(AgentTask(prompt="app.py=print(2)", cwd=str(repo)))
    assert result.success
    assert result.branch == f"llmcore/fake/{result.run_id}"
    assert result.worktree and Path(result.worktree, "app.py").read_text() == "print(2)\n"
    assert agent.last_run.events[0]["cwd"] == result.worktree
    assert (repo / "app.py").read_text() == "print(1)\n"  # the checkout is untouched
    assert git(repo, "rev-parse", "HEAD").strip() == head
    assert "-print(1)" in result.diff and "+print(2)" in result.diff
    assert ".agent-cache" not in result.diff  # the agent's own files are not committed
    assert result.files_modified == ["app.py"]
    # The branch holds the change as a commit on top of HEAD.
    assert git(repo, "rev-parse", f"{result.branch}~1").strip() == head
    assert result.to_dict()["branch"] == result.branch


def test_uncommitted_changes_are_refused_with_a_clear_message(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo", {"app.py": "print(1)\n"})
    (repo / "app.py").write_text("edited, not committed\n")
    (repo / "untracked.txt").write_text("fine")
    with pytest.raises(llmcore.AgentError, match=r"uncommitted changes.*app\.py") as info:
        _agent(tmp_path).run(AgentTask(prompt="x.txt=1", cwd=str(repo)))
    assert "stash" in (info.value.hint or "")
    assert list_runs() == []
    assert "llmcore/" not in git(repo, "branch", "--list")


def test_merge_fast_forward_then_merge_commit_then_conflict(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo", {"app.py": "print(1)\n", "b.txt": "b\n"})
    agent = _agent(tmp_path)
    r1 = agent.run(AgentTask(prompt="new.txt=first", cwd=str(repo)))
    r2 = agent.run(AgentTask(prompt="other.txt=second", cwd=str(repo)))
    r3 = agent.run(AgentTask(prompt="app.py=print('agent')", cwd=str(repo)))

    out = llmcore.Client(agents=[agent]).merge_run(r1)
    assert out.how == "fast-forward" and out.files == ["new.txt"]
    assert (repo / "new.txt").read_text() == "first\n"
    out = merge_run(r2.run_id or "")
    assert out.how == "merge"  # the checkout moved since r2 started
    assert (repo / "other.txt").read_text() == "second\n"
    assert merge_run(r2.run_id or "").how == "nothing"

    # The user changed app.py meanwhile: a conflict, aborted, the branch kept.
    (repo / "app.py").write_text("print('user')\n")
    git(repo, "commit", "-qam", "user edit")
    head = git(repo, "rev-parse", "HEAD").strip()
    with pytest.raises(llmcore.AgentError, match=r"conflicts in app\.py"):
        merge_run(r3)
    assert git(repo, "rev-parse", "HEAD").strip() == head
    assert git(repo, "status", "--porcelain") == ""
    assert (repo / "app.py").read_text() == "print('user')\n"
    assert r3.branch in git(repo, "branch", "--list", "llmcore/*")


def test_clean_by_policy_and_from_the_cli(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    ok_agent = _agent(tmp_path)
    ok = ok_agent.run(AgentTask(prompt="a.txt=1", cwd=str(repo)))
    bad_script = write_script(tmp_path, EDIT + "    sys.exit(3)\n", name="bad.py")
    bad = script_agent(bad_script, isolation="worktree").run(
        AgentTask(prompt="b.txt=2", cwd=str(repo))
    )
    assert ok.success and not bad.success
    assert clean_runs("all") == []
    removed = clean_runs("failed")
    assert [r["run_id"] for r in removed] == [ok.run_id]
    assert not Path(ok.worktree or "").exists() and Path(bad.worktree or "").exists()
    out = run_cli("agent", "clean", "--keep", "none", "--json")
    assert out.returncode == 0, out.stderr
    assert [r["run_id"] for r in json.loads(out.stdout)["removed"]] == [bad.run_id]
    assert git(repo, "branch", "--list", "llmcore/*") == ""
    assert len(git(repo, "worktree", "list").splitlines()) == 1
    assert not Path(bad.worktree or "").exists()


def test_resuming_a_session_reuses_its_runs_worktree(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    script = write_script(tmp_path, EDIT)

    class SessionAgent(llmcore.Agent):
        type_name = program = "session-fake"

        def build(self, task: Any) -> llmcore.Invocation:
            return llmcore.Invocation(argv=[sys.executable, str(script), task.prompt])

        def finish(self, task: Any, run: Any) -> llmcore.AgentResult:
            r = super().finish(task, run)
            r.session_id = task.resume or "sess-1"
            return r

    agent = SessionAgent(
        llmcore.AgentConfig(name="sess", command=sys.executable, isolation="worktree")
    )
    first = agent.run(AgentTask(prompt="one.txt=1", cwd=str(repo)))
    again = agent.run(AgentTask(prompt="two.txt=2", cwd=str(repo), resume="sess-1"))
    assert again.worktree == first.worktree and again.branch == first.branch
    assert sorted(p.name for p in Path(again.worktree or "").glob("*.txt")) == [
        "one.txt",
        "two.txt",
    ]
    assert "+2" in (again.diff or "") and "+1" in (again.diff or "")
    assert len(list_runs()) == 1


def test_cli_merge_and_runs(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    r = _agent(tmp_path).run(AgentTask(prompt="c.txt=3", cwd=str(repo)))
    listed = json.loads(run_cli("agent", "runs", "--json").stdout)
    assert [x["run_id"] for x in listed] == [r.run_id]
    out = run_cli("agent", "merge", r.run_id or "", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["how"] == "fast-forward"
    assert (repo / "c.txt").read_text() == "3\n"
    out = run_cli("agent", "merge", "no-such-run", "--json")
    assert out.returncode != 0 and json.loads(out.stdout)["merged"] is False


def test_interrupted_isolated_run_keeps_changes_or_leaves_nothing(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    script = write_script(
        tmp_path,
        """
        import json, sys
        if sys.argv[-1] == "edit":
            open("half.txt", "w").write("half done\\n")
        print(json.dumps({"type": "step"}), flush=True)
        import time; time.sleep(60)
    """,
    )

    import _thread
    import signal
    import threading

    # A test run started in the background (`pytest &`) inherits SIGINT ignored, and then
    # interrupt_main does nothing: give this process Python's own Ctrl-C handler meanwhile.
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for prompt in ("idle", "edit"):
            agent: Any = script_agent(script, isolation="worktree")
            # Ctrl-C as the user would press it: KeyboardInterrupt in the main thread.
            threading.Timer(1.5, _thread.interrupt_main).start()
            with pytest.raises(KeyboardInterrupt):
                agent.run(AgentTask(prompt=prompt, cwd=str(repo)))
    finally:
        signal.signal(signal.SIGINT, before)
    runs = list_runs()
    assert len(runs) == 1  # the idle run left nothing; the one that edited is kept
    kept = runs[0]
    assert kept.finished and kept.success is False
    assert "half.txt" in git(repo, "show", "--stat", kept.branch)
    assert len(git(repo, "worktree", "list").splitlines()) == 2
