"""Run docs/getting-started.md: every code block, in order, as a newcomer would.

The page is the script. ``yaml`` and ``python`` blocks with a ``title`` are written to that
file; ``bash`` blocks run line by line in a fresh virtual environment (``export`` lines set
the environment of the later ones). The only changes made to what the page says:

* the servers' URLs are swapped for fakes on 127.0.0.1 (Ollama, an OpenAI-compatible API,
  the OpenAI Responses API that Codex speaks);
* ``pip install`` and ``llmcore install`` get ``--no-index --find-links DIST``: the packages
  come from the wheels built from this checkout, not from PyPI;
* an ``<!-- test: ... -->`` comment before a block makes the world match the prose
  ("ollama is down" stops the Ollama fake; "codex writes hello.py" scripts the model).

Then the test checks that each step did what the page says it does.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import zipfile
from pathlib import Path

import pytest
from agent_env import agent_path_value, ensure_agents
from llmcore.testing.fakes import OllamaFake, OpenAIFake, Reply, ResponsesFake
from packaging_support import CORE, PLUGINS, ROOT, built_dists, make_venv, pip_install, wheel

PAGE = ROOT / "docs" / "getting-started.md"
OLLAMA_URL = "http://localhost:11434"
CLOUD_URL = "https://openrouter.ai/api/v1"
OPENAI_URL = "https://api.openai.com/v1"
ANSWER = "Sunlight scatters off air molecules, and blue light scatters the most."

_FENCE = re.compile(r"^```(\w+)?(.*)$")
_TITLE = re.compile(r'title="([^"]+)"')
_DIRECTIVE = re.compile(r"^<!-- test: (.+?) -->$")


def blocks(text: str) -> list[dict[str, str]]:
    """The page's code blocks in order: lang, title, body and the directive before it."""
    out: list[dict[str, str]] = []
    lines = text.splitlines()
    directive = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        d = _DIRECTIVE.match(line.strip())
        if d:
            directive = d.group(1)
        m = _FENCE.match(line)
        if m and line.startswith("```"):
            lang, attrs = m.group(1) or "", m.group(2)
            body: list[str] = []
            i += 1
            while not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            title = _TITLE.search(attrs)
            out.append(
                {
                    "lang": lang,
                    "title": title.group(1) if title else "",
                    "body": "\n".join(body) + "\n",
                    "directive": directive,
                }
            )
            directive = ""
        i += 1
    return out


def _requirements(dist: Path) -> list[str]:
    """Every third-party dependency of the wheels, so `pip install --no-index` can work."""
    reqs: set[str] = set()
    for name in [CORE, *PLUGINS]:
        with zipfile.ZipFile(wheel(dist, name)) as z:
            meta = z.read(next(n for n in z.namelist() if n.endswith("METADATA"))).decode()
        for line in meta.splitlines():
            if line.startswith("Requires-Dist:") and "extra ==" not in line:
                req = line.split(":", 1)[1].strip()
                if not req.lower().startswith("llmcore"):
                    reqs.add(req)
    return sorted(reqs)


def test_getting_started_page_runs(tmp_path: Path) -> None:
    dist = built_dists()
    venv = make_venv(tmp_path / "venv", pip=True)
    pip_install(venv, *_requirements(dist))  # dependencies only: the page installs llmcore
    work = tmp_path / "work"
    work.mkdir()
    ensure_agents()  # the real `codex` program, as the page's last step needs it

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LLMCORE_", "VIRTUAL_ENV", "OPENAI", "OPENROUTER"))
    }
    env["PATH"] = f"{venv.parent}{os.pathsep}{agent_path_value()}"
    env["VIRTUAL_ENV"] = str(venv.parent.parent)

    ollama = OllamaFake().start()
    cloud = OpenAIFake(default=Reply(text=ANSWER)).start()
    responses = ResponsesFake().start()
    ollama.default = Reply(text=ANSWER)
    urls = {OLLAMA_URL: ollama.url, CLOUD_URL: cloud.base_url, OPENAI_URL: responses.base_url}
    ran: dict[str, subprocess.CompletedProcess[str]] = {}
    files_after: dict[str, str | None] = {}  # demo/hello.py after each command
    try:
        found = blocks(PAGE.read_text(encoding="utf-8"))
        assert found, "no code blocks found"
        for block in found:
            body = block["body"]
            for real, fake in urls.items():
                body = body.replace(real, fake)
            directive = block["directive"]
            if directive == "ollama is down":
                ollama.stop()
            elif directive == "codex writes hello.py":
                responses.push(
                    Reply(
                        text="",
                        usage=(120, 9),
                        tool_calls=[
                            {
                                "name": "exec_command",
                                "id": "call_1",
                                "arguments": {
                                    "cmd": "printf 'print(\"hello\")\\n' > hello.py",
                                    "workdir": str(work / "demo"),
                                    "tty": False,
                                },
                            }
                        ],
                    ),
                    Reply(text="Created hello.py.", usage=(140, 4)),
                )
            elif directive == "codex edits hello.py":
                responses.push(
                    Reply(
                        text="",
                        usage=(150, 12),
                        tool_calls=[
                            {
                                "name": "exec_command",
                                "id": "call_2",
                                "arguments": {
                                    "cmd": "printf '# says hello\\nprint(\"hello\")\\n' > hello.py",
                                    "workdir": str(work / "demo"),
                                    "tty": False,
                                },
                            }
                        ],
                    ),
                    Reply(text="Added a comment.", usage=(170, 4)),
                )
            elif directive:
                pytest.fail(f"unknown test directive {directive!r} in {PAGE.name}")

            if block["lang"] in ("yaml", "python"):
                assert block["title"], f"a {block['lang']} block needs a title=: {body[:80]}"
                (work / block["title"]).write_text(body, encoding="utf-8")
            elif block["lang"] == "bash":
                for line in body.splitlines():
                    line = line.strip()
                    if not line or line.startswith("#"):
                        continue
                    ran[line] = _run(line, work, env, dist)
                    hello = work / "demo" / "hello.py"
                    files_after[line] = hello.read_text() if hello.exists() else None
            else:
                pytest.fail(f"a {block['lang'] or 'plain'} block cannot be run: {body[:80]}")
    finally:
        for fake in (ollama, cloud, responses):
            fake.stop()

    # 1. Install: the two distributions, from the wheels, and both known to the CLI.
    version = ran["llmcore --version"].stdout
    assert version.startswith("llmcore ") and "llmcore-plugin-ollama" in version
    assert re.search(r"llmcore-plugin-ollama.*loaded", ran["llmcore plugins"].stdout)

    # 2. First chat: the model is pulled, then asked, and its answer printed.
    assert ran["llmcore config validate"].stdout.startswith("ok: ")
    paths = [(r.method, r.path, (r.json or {}).get("model")) for r in ollama.requests]
    assert ("POST", "/api/pull", "gemma3:270m") in paths
    assert ("POST", "/api/chat", "gemma3:270m") in paths
    first = ran['llmcore chat "Why is the sky blue? One sentence."']
    assert ANSWER in first.stdout

    # 3. Fallback: both providers listed; with Ollama down, `cloud` answers, with the key.
    listing = ran["llmcore providers"].stdout
    assert "local" in listing and "cloud" in listing
    answer = json.loads(ran['llmcore chat --json "Why is the sky blue? One sentence."'].stdout)
    assert answer["provider"] == "cloud" and answer["content"] == ANSWER
    assert [a["provider"] for a in answer["attempts"]][-1] == "cloud"
    assert any(a["provider"] == "local" and a.get("error_type") for a in answer["attempts"])
    auth = {k.lower(): v for k, v in cloud.requests[-1].headers.items()}["authorization"]
    assert auth == "Bearer sk-or-your-key"

    # 4. Python, sync and async.
    assert ANSWER in ran["python ask.py"].stdout
    assert "answered by cloud" in ran["python ask.py"].stdout
    assert ran["python stream.py"].stdout.strip() == ANSWER

    # 5. The agent: installed by short name, ran the real codex, which wrote the file.
    assert "installed llmcore-plugin-codex" in ran["llmcore install codex"].stdout
    agent_out = ran["python agent.py"].stdout
    assert "success: True" in agent_out, agent_out + ran["python agent.py"].stderr
    assert "files changed: ['hello.py']" in agent_out
    assert files_after["python agent.py"] == 'print("hello")\n'
    assert "Created hello.py." in agent_out
    agents = ran["llmcore agents"].stdout
    assert re.search(r"codex\s.*\byes\b", agents), agents
    run_line = 'llmcore agent run codex "Add a comment at the top of hello.py." --cwd demo'
    assert "Added a comment." in ran[run_line].stdout + ran[run_line].stderr
    assert files_after[run_line] == '# says hello\nprint("hello")\n'


def _run(line: str, cwd: Path, env: dict[str, str], dist: Path) -> subprocess.CompletedProcess[str]:
    if line.startswith("export "):
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = shlex.split(value)[0] if value else ""
        return subprocess.CompletedProcess(line, 0, "", "")
    cmd = line
    if line.startswith(("pip install ", "llmcore install ")):
        cmd += f" --no-index --find-links {shlex.quote(str(dist))}"
    out = subprocess.run(
        ["bash", "-c", cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, f"`{line}` failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
    return out
