"""A key given through `options.headers` (Authorization, api-key, x-api-key, …) is a secret
like `api_key`: redacted from config show, repr(Config), errors, attempts, events and every
sink, even when the server echoes it; the 401 hint names the setting actually used."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from llmcore.client import Client
from llmcore.config import parse_config
from llmcore.errors import AuthenticationError
from llmcore.testing.fakes.base import RecordedRequest, Reply
from llmcore.testing.fakes.openai import OpenAIFake

CANARY = "hdrcanary-7f3a91c2d4e6b8"


class EchoingHeaders(OpenAIFake):
    """Refuses every call with 401, quoting every header it received."""

    def next_reply(self, req: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(req)
        said = "; ".join(f"{k}={v}" for k, v in req.headers.items())
        return Reply(status=401, error=f"bad credentials: {said}")


def _yaml(url: str, header: str, value: str, tmp_path: Path) -> str:
    return textwrap.dedent(f"""
        providers:
          azureish:
            plugin: openai
            base_url: '{url}'
            models: [m1]
            headers: {{'{header}': '{value}'}}
            retry: {{max_attempts: 1}}
        agents: {{}}
        routing: {{state: 'file:{tmp_path / "state.json"}'}}
        metrics:
          sinks: [sqlite, jsonl]
          sqlite: {{path: '{tmp_path / "m.db"}'}}
          jsonl: {{path: '{tmp_path / "m.jsonl"}'}}
    """)


@pytest.mark.parametrize(
    "header,value",
    [
        ("api-key", CANARY),
        ("x-api-key", CANARY),
        ("Authorization", f"Bearer {CANARY}"),
        ("X-Custom-Token", CANARY),
    ],
)
def test_a_key_in_headers_never_leaks(
    tmp_path: Path, header: str, value: str, capfd: pytest.CaptureFixture[str]
) -> None:
    with EchoingHeaders() as fake:
        text = _yaml(fake.base_url, header, value, tmp_path)
        cfg = parse_config(text)
        seen: list[str] = [repr(cfg), str(cfg)]
        client = Client(cfg)
        with pytest.raises(AuthenticationError) as info:
            client.chat("hi")
        exc = info.value
        assert any(CANARY in json.dumps(r.headers) for r in fake.requests)  # it was sent
        seen += [str(exc), repr(exc), *(json.dumps(a.to_dict()) for a in exc.attempts)]
        # The hint names the setting actually used, not "set OPENAI_API_KEY".
        assert f"set the {header} header in providers.azureish.headers" in (
            exc.attempts[0].hint or ""
        )
        client.close()
        cfg_file = tmp_path / "llmcore.yaml"
        cfg_file.write_text(text)
        shown = subprocess.run(
            [sys.executable, "-m", "llmcore", "--config", str(cfg_file), "config", "show"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert shown.returncode == 0, shown.stderr
        assert "***" in shown.stdout
        seen += [shown.stdout, shown.stderr]
        cli = subprocess.run(
            [sys.executable, "-m", "llmcore", "--config", str(cfg_file), "chat", "--json", "hi"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert cli.returncode == 1
        seen += [cli.stdout, cli.stderr]
    conn = sqlite3.connect(tmp_path / "m.db")
    rows: list[Any] = conn.execute("SELECT * FROM events").fetchall()
    conn.close()
    assert rows
    seen += [repr(rows), (tmp_path / "m.jsonl").read_text()]
    if (tmp_path / "state.json").exists():
        seen.append((tmp_path / "state.json").read_text())
    out = capfd.readouterr()
    seen += [out.out, out.err]
    leaked = [s for s in seen if CANARY in s]
    assert not leaked, leaked[0][:500]
