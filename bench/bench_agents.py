"""Agent runs: the runner's own overhead, and each real agent's start-up time.

1. Runner overhead: a trivial fake agent script (prints one JSON event, exits) started by
   llmcore's runner (spawn → stream → process-group cleanup → files changed → parsed result)
   against the same script started by a bare ``subprocess.run``, in the same run. Measured in
   a plain directory and in a git repository (git status/hash calls are the main extra cost).
   Budget: ≤ 50 ms over the bare call (median).
2. Start-up per real agent (Qwen Code, OpenCode, Aider; the others when their plugins are
   installed): one trivial prompt end to end against a local scripted OpenAI Chat fake.
3. OpenCode with ``attach: auto`` (one ``opencode serve`` kept for the client) against a
   fresh ``opencode run`` each time: a trivial run's time, interleaved, as a ratio; the first
   attached run, which starts the server, is reported on its own.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = 'import json; print(json.dumps({"type": "result", "text": "ok"}))\n'


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _runner_overhead(quick: bool) -> list[dict[str, Any]]:
    sys.path.insert(0, str(ROOT / "tests"))
    from agent_env import git_repo, script_agent
    from llmcore.types import AgentTask

    n = 8 if quick else 30
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp, "agent.py")
        script.write_text(SCRIPT)
        plain = Path(tmp, "plain")
        plain.mkdir()
        (plain / "a.txt").write_text("x")
        repo = git_repo(Path(tmp, "repo"), {f"f{i}.txt": str(i) for i in range(20)})
        agent: Any = script_agent(script)
        for label, cwd in (("plain dir", plain), ("git repo", repo)):
            bare: list[float] = []
            ours: list[float] = []
            for _ in range(n):  # interleaved so machine load hits both alike
                t0 = time.perf_counter()
                subprocess.run(
                    [sys.executable, str(script), "--", "hi"],
                    cwd=cwd,
                    capture_output=True,
                    check=True,
                )
                bare.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                result = agent.run(AgentTask(prompt="hi", cwd=str(cwd)))
                ours.append(time.perf_counter() - t0)
                assert result.success and result.events == 1
            b, o = _median_ms(bare), _median_ms(ours)
            rows.append(
                {
                    "group": "agents",
                    "name": f"bare subprocess.run ({label})",
                    "value": round(b, 1),
                    "unit": "ms",
                    "note": f"median of {n}",
                }
            )
            rows.append(
                {
                    "group": "agents",
                    "name": f"llmcore runner ({label})",
                    "value": round(o, 1),
                    "unit": "ms",
                    "ratio": round(o / b, 2),
                    "budget": "≤ bare + 50 ms",
                    "met": o - b <= 50,
                    "note": f"overhead {o - b:.1f} ms (median of {n})",
                }
            )
    return rows


def _agent_startup(quick: bool) -> list[dict[str, Any]]:
    sys.path.insert(0, str(ROOT / "tests"))
    import llmcore
    from agent_env import agent_fake, ensure_agents, git_repo, real_agent_yaml
    from llmcore.config import parse_config
    from llmcore.testing.fakes import Reply

    ensure_agents()
    rows: list[dict[str, Any]] = []
    os.environ["LLMCORE_BENCH_KEY"] = "sk-bench-0123456789"
    runs = 1 if quick else 3
    for plugin in ("qwen", "opencode", "aider"):
        times: list[float] = []
        with (
            tempfile.TemporaryDirectory() as tmp,
            agent_fake(side_text="title", default=Reply(text="ok")) as fake,
        ):  # type: ignore
            repo = git_repo(Path(tmp, "repo"))
            yaml = real_agent_yaml(
                plugin, plugin, fake.base_url, key_env="LLMCORE_BENCH_KEY", mode="read_only"
            )
            with llmcore.Client(parse_config(yaml)) as client:
                for _ in range(runs):
                    t0 = time.perf_counter()
                    result = client.run_agent(plugin, "say ok", cwd=repo)
                    times.append(time.perf_counter() - t0)
                    if not result.success:
                        raise RuntimeError(f"{plugin}: {result.error}")
        rows.append(
            {
                "group": "agents",
                "name": f"{plugin}: trivial run, start to result",
                "value": round(statistics.median(times), 2),
                "unit": "s",
                "note": f"median of {runs}; local fake endpoint, trivial prompt",
            }
        )
    return rows


def _opencode_attach(quick: bool) -> list[dict[str, Any]]:
    sys.path.insert(0, str(ROOT / "tests"))
    import llmcore
    from agent_env import agent_fake, ensure_agents, git_repo, real_agent_yaml
    from llmcore.config import parse_config
    from llmcore.testing.fakes import Reply

    ensure_agents()
    os.environ["LLMCORE_BENCH_KEY"] = "sk-bench-0123456789"
    runs = 2 if quick else 5
    fresh: list[float] = []
    attached: list[float] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        agent_fake(side_text="title", default=Reply(text="ok")) as fake,
    ):  # type: ignore
        repo = git_repo(Path(tmp, "repo"))
        clients = {}
        for label, opts in (("fresh", {}), ("attached", {"attach": "auto"})):
            yaml = real_agent_yaml(
                "opencode",
                "opencode",
                fake.base_url,
                key_env="LLMCORE_BENCH_KEY",
                mode="read_only",
                options=opts,
            )
            clients[label] = llmcore.Client(parse_config(yaml))
        try:
            t0 = time.perf_counter()
            first = clients["attached"].run_agent("opencode", "say ok", cwd=repo)
            first_s = time.perf_counter() - t0
            assert first.success, first.error
            for _ in range(runs):  # interleaved so machine load hits both alike
                for label, into in (("fresh", fresh), ("attached", attached)):
                    t0 = time.perf_counter()
                    result = clients[label].run_agent("opencode", "say ok", cwd=repo)
                    into.append(time.perf_counter() - t0)
                    if not result.success:
                        raise RuntimeError(f"opencode ({label}): {result.error}")
        finally:
            for c in clients.values():
                c.close()  # stops the server of attach: auto
    f, a = statistics.median(fresh), statistics.median(attached)
    return [
        {
            "group": "agents",
            "name": "opencode: trivial run, fresh `opencode run`",
            "value": round(f, 2),
            "unit": "s",
            "note": f"median of {runs}",
        },
        {
            "group": "agents",
            "name": "opencode: trivial run, attach: auto (server reused)",
            "value": round(a, 2),
            "unit": "s",
            "ratio": round(a / f, 2),
            "note": f"median of {runs}, interleaved with the fresh runs; the first attached "
            f"run (starting `opencode serve`) took {first_s:.1f} s",
        },
    ]


def run(quick: bool) -> list[dict[str, Any]]:
    rows = _runner_overhead(quick)
    try:
        rows += _opencode_attach(quick)
    except Exception as exc:
        rows.append(
            {
                "group": "agents",
                "name": "opencode attach",
                "value": None,
                "unit": "",
                "note": f"{type(exc).__name__}: {exc}",
            }
        )
    try:
        rows += _agent_startup(quick)
    except Exception as exc:  # the runner rows stand on their own
        rows.append(
            {
                "group": "agents",
                "name": "real agents start-up",
                "value": None,
                "unit": "",
                "note": f"{type(exc).__name__}: {exc}",
            }
        )
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
