"""A chat the router gives to an agent with ``via_gateway: true`` reaches the model through a
real ``llmcore serve``: the agent (a small script speaking the OpenAI API, standing in for
a coding agent) is pointed at the gateway, whose route fails over from an upstream answering
500 to a working one. The unit side (on a fake /health) is core/tests/router/test_routed_agents.py.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import llmcore
from gateway_support import GatewayProcess, provider_yaml
from llmcore import hookimpl
from llmcore.testing import StaticProvider
from llmcore.testing.fakes import OpenAIFake, Reply

AGENT = textwrap.dedent("""
    import json, os, sys, urllib.request
    base = os.environ["AGENT_BASE_URL"]
    key = os.environ.get(os.environ["AGENT_KEY_ENV"], "")
    body = {"model": "coder", "messages": [{"role": "user", "content": sys.argv[-1]}]}
    req = urllib.request.Request(
        base + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": "Bearer " + key},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        print(json.load(r)["choices"][0]["message"]["content"])
""")


class ApiCaller(llmcore.Agent):
    """Runs ``python SCRIPT -- PROMPT`` with its endpoint and key variable in the env."""

    type_name = "api-caller"
    program = "python3"

    def build(self, task: llmcore.AgentTask) -> llmcore.Invocation:
        return llmcore.Invocation(
            argv=[str(self.config.command), *task.args, "--", task.prompt],
            env={
                "AGENT_BASE_URL": self.config.base_url or "",
                "AGENT_KEY_ENV": self.config.api_key_env or "NO_KEY",
            },
            cwd=task.cwd,
        )


class Plugin:
    @hookimpl
    def llmcore_register_providers(self) -> list[Any]:
        return [StaticProvider]

    @hookimpl
    def llmcore_register_agents(self) -> list[Any]:
        return [ApiCaller]


def test_a_routed_via_gateway_agent_talks_through_a_real_gateway(
    tmp_path: Path, make_client: Any
) -> None:
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    with (
        OpenAIFake(default=Reply(status=500, error="upstream exploded")) as broken,
        OpenAIFake() as good,
    ):
        good.push(Reply(text="written through the gateway"))
        upstream = (
            "providers:\n"
            + provider_yaml("broken", broken.base_url, ["m"])
            + provider_yaml("good", good.base_url, ["m"])
            + "routing: {state: memory}\n"
            + f"metrics: {{sinks: [sqlite], sqlite: {{path: {tmp_path / 'gw.db'}}}}}\n"
        )
        routes = "  models:\n    coder: [broken/m, good/m]\n"
        with GatewayProcess(tmp_path, upstream + "serve:\n" + routes) as gw:
            port = int(gw.url.rsplit(":", 1)[1])
            client_config = (
                "providers:\n  api: {plugin: static, reply: from-api, models: [m1]}\n"
                "agents:\n"
                f"  coder: {{plugin: api-caller, command: {sys.executable}, args: [{script}], "
                "serve_prompts: true, via_gateway: true, model: coder}\n"
                "routing: {state: memory, prefer: cli}\n"
                "metrics: {enabled: false}\n"
                f"serve:\n  host: 127.0.0.1\n  port: {port}\n" + routes
            )
            client = make_client(client_config, Plugin())
            resp = client.chat("write the file")
    assert resp.provider == "coder", resp.attempts
    assert resp.content.strip() == "written through the gateway"
    assert client.runtime.providers["api"].requests == []
    # the gateway tried its route in order: the 500 first, then the working upstream
    assert len(broken.requests) == 1 and len(good.requests) == 1
    assert good.requests[0].json["messages"][-1]["content"] == "write the file"
