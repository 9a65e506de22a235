"""Keys, limits and budgets of ``llmcore serve``, and its robustness: 401/403/429 in each
endpoint's shape, requests per minute shared by two workers, a daily budget read from the
metrics db, ``usage --by key``, the bind policy, the body limit, the concurrency bound,
and a client that hangs up cancelling the upstream call. The key never appears in a log,
a metric or the db."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest
from gateway_support import GatewayProcess, provider_yaml
from llmcore.testing.fakes import OpenAIFake
from llmcore.testing.fakes.base import Reply

ALICE = "sk-alice-canary-7f3a9c"
BOB = "bob-secret-canary-51e0"
ASK = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def fake() -> Iterator[OpenAIFake]:
    f = OpenAIFake().start()
    yield f
    f.stop()


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, fake: OpenAIFake) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("gw-keys")
    bob_hash = hashlib.sha256(BOB.encode()).hexdigest()
    config = (
        "providers:\n"
        + provider_yaml(
            "up",
            fake.base_url,
            ["fake-model", "other"],
            cost="{input_per_million: 1000000, output_per_million: 1000000}",
        )
        + "routing: {state: memory}\n"
        + f"metrics: {{sinks: [sqlite], sqlite: {{path: {tmp / 'metrics.db'}, "
        "flush_interval: 0.2}}\n"
        + "serve:\n  models:\n    coder: [up/fake-model]\n  keys:\n"
        + "    alice: {key_env: ALICE_KEY, models: [coder], rpm: 3}\n"
        + f"    bob: {{sha256: {bob_hash}, daily_usd: 0.5}}\n"
    )
    with GatewayProcess(tmp, config, workers=2, env={"ALICE_KEY": ALICE}) as gw:
        yield gw


def oa(gw: GatewayProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=60)


def test_missing_and_wrong_keys_are_401_in_each_shape(keyed: GatewayProcess) -> None:
    status, body, _ = keyed.post("/v1/chat/completions", {"model": "coder", "messages": ASK})
    assert status == 401 and body["error"]["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError):
        oa(keyed, "sk-wrong").chat.completions.create(model="coder", messages=ASK)
    client = anthropic.Anthropic(base_url=keyed.url, api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as info:
        client.messages.create(model="coder", max_tokens=5, messages=ASK)
    assert info.value.body["type"] == "error"
    assert info.value.body["error"]["type"] == "authentication_error"


def test_model_not_allowed_is_403(keyed: GatewayProcess) -> None:
    with pytest.raises(openai.PermissionDeniedError) as info:
        oa(keyed, ALICE).chat.completions.create(model="up/other", messages=ASK)
    assert "coder" in str(info.value)
    assert [m.id for m in oa(keyed, ALICE).models.list()] == ["coder"]


def test_rpm_is_shared_by_the_workers(keyed: GatewayProcess) -> None:
    client = oa(keyed, ALICE)
    ok = 0
    refused: list[openai.RateLimitError] = []
    for _ in range(6):  # two workers: a per-process count would let 6 through
        try:
            client.chat.completions.create(model="coder", messages=ASK)
            ok += 1
        except openai.RateLimitError as exc:
            refused.append(exc)
    assert ok == 3 and len(refused) == 3
    assert int(refused[0].response.headers["retry-after"]) >= 1


def test_daily_budget_from_the_metrics_db(keyed: GatewayProcess) -> None:
    client = oa(keyed, BOB)
    # each answer costs ~$6 at the configured price; the budget is $0.50
    client.chat.completions.create(model="coder", messages=ASK)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            client.chat.completions.create(model="coder", messages=ASK)
        except openai.RateLimitError as exc:
            assert "daily budget" in str(exc)
            break
        time.sleep(0.5)
    else:
        pytest.fail("the key was never stopped by its daily budget")


def test_usage_by_key_and_no_key_anywhere(keyed: GatewayProcess) -> None:
    deadline = time.monotonic() + 30
    rows: dict[str, dict] = {}
    while time.monotonic() < deadline:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "llmcore",
                "usage",
                "--by",
                "key",
                "--json",
                "--config",
                str(keyed.config_path),
            ],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
        rows = {r["key"]: r for r in json.loads(out.stdout)["rows"]}
        if rows.get("alice", {}).get("requests", 0) >= 3 and "bob" in rows:
            break
        time.sleep(0.5)
    assert rows["alice"]["requests"] >= 3 and rows["bob"]["cost_usd"] > 0
    from llmcore.sinks.sqlite import read_events

    refused = [e for e in read_events(keyed.dir / "metrics.db") if e["kind"] == "refused"]
    assert {(e["key_name"], e["status"]) for e in refused} >= {
        ("alice", 429),
        ("alice", 403),
        ("bob", 429),
        (None, 401),
    }
    _, _, metrics = keyed.get("/metrics")
    assert 'key="alice"' in metrics and 'status="429"' in metrics
    db = (keyed.dir / "metrics.db").read_bytes()
    for secret in (ALICE, BOB):
        assert secret not in metrics and secret not in keyed.stderr()
        assert secret.encode() not in db


def test_non_loopback_without_keys_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("providers: {}\n")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmcore",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--config",
            str(cfg),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "refusing to listen on 0.0.0.0" in out.stderr and "serve.keys" in out.stderr


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory, fake: OpenAIFake) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("gw-limits")
    config = (
        "providers:\n"
        + provider_yaml("up", fake.base_url, ["fake-model"])
        + "routing: {state: memory}\nmetrics: {enabled: false}\n"
        + "serve: {max_body_bytes: 4096, max_concurrency: 1}\n"
    )
    with GatewayProcess(tmp, config, workers=1) as gw:
        yield gw


def test_body_limit_is_413_in_the_endpoint_shape(limited: GatewayProcess) -> None:
    big = {"model": "up/fake-model", "messages": [{"role": "user", "content": "x" * 10000}]}
    status, body, _ = limited.post("/v1/chat/completions", big)
    assert status == 413 and "too large" in body["error"]["message"]
    status, body, _ = limited.post("/v1/messages", {**big, "max_tokens": 5})
    assert status == 413 and body["error"]["type"] == "request_too_large"


def test_concurrency_bound_is_429_with_retry_after(
    limited: GatewayProcess, fake: OpenAIFake
) -> None:
    fake.push(Reply(delay=2.0))
    slow = threading.Thread(
        target=limited.post,
        args=("/v1/chat/completions", {"model": "up/fake-model", "messages": ASK}),
    )
    slow.start()
    time.sleep(0.7)
    status, body, headers = limited.post(
        "/v1/chat/completions", {"model": "up/fake-model", "messages": ASK}
    )
    slow.join()
    assert status == 429 and headers["Retry-After"] == "1"
    assert "concurrency limit" in body["error"]["message"]


def test_client_hanging_up_cancels_the_upstream_call(
    limited: GatewayProcess, fake: OpenAIFake
) -> None:
    fake.push(Reply(text=" ".join(["word"] * 30), chunk_delay=0.5))  # ~15 s of stream
    host, port = limited.url.removeprefix("http://").split(":")
    body = json.dumps({"model": "up/fake-model", "messages": ASK, "stream": True}).encode()
    with socket.create_connection((host, int(port))) as s:
        s.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        s.settimeout(30)
        got = b""
        while b"data:" not in got:  # the stream has begun (headers may come first)
            piece = s.recv(65536)
            assert piece, f"the gateway closed the stream: {got!r}"
            got += piece
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        _, health, _ = limited.get("/health")
        if health["in_flight"] == 0:
            break
        time.sleep(0.1)
    assert health["in_flight"] == 0  # long before the upstream would have finished
