"""Beyond one process: two gateways sharing a real Redis share cooldowns; killing a worker
mid-stream loses no request of the other worker; a real Prometheus server scrapes
``/metrics`` and a PromQL query returns the requests by key and provider."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from gateway_support import GatewayProcess, provider_yaml
from llmcore.testing.fakes import OpenAIFake
from llmcore.testing.fakes.base import Reply
from redis_server import RedisServer, free_port

ASK = [{"role": "user", "content": "hi"}]


@pytest.fixture
def fakes() -> Iterator[tuple[OpenAIFake, OpenAIFake]]:
    limited = OpenAIFake(
        default=Reply(status=429, error="slow down", headers={"Retry-After": "120"})
    ).start()
    good = OpenAIFake().start()
    yield limited, good
    limited.stop()
    good.stop()


def test_two_gateways_share_cooldowns_through_redis(
    tmp_path: Path, fakes: tuple[OpenAIFake, OpenAIFake]
) -> None:
    limited, good = fakes
    with RedisServer(tmp_path) as redis:
        config = (
            "providers:\n"
            + provider_yaml("limited", limited.base_url, ["m"])
            + provider_yaml("good", good.base_url, ["fake-model"])
            + f'routing: {{state: "{redis.url}"}}\nmetrics: {{enabled: false}}\n'
            + "serve:\n  models:\n    fast: [limited/m, good/fake-model]\n"
        )
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        with (
            GatewayProcess(tmp_path / "a", config) as a,
            GatewayProcess(tmp_path / "b", config) as b,
        ):
            for gw in (a, b, a, b):
                out = openai.OpenAI(
                    base_url=gw.url + "/v1", api_key="x", max_retries=0
                ).chat.completions.create(model="fast", messages=ASK)
                assert out.choices[0].message.content == "Hello from the fake server."
    # the 429 seen by the first gateway cooled the provider for both: one call in all
    assert len(limited.requests) == 1
    assert len(good.requests) == 4


def _stream(url: str, out: dict[str, object]) -> None:
    """One streamed chat on its own connection: records the worker, the text and how it
    ended (``done``: [DONE] seen; ``broken``: the connection died)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        conn.request(
            "POST",
            "/v1/chat/completions",
            json.dumps({"model": "slow/fake-model", "messages": ASK, "stream": True}),
            {"Content-Type": "application/json"},
        )
        resp = conn.getresponse()
        out["worker"] = resp.getheader("X-Llmcore-Worker")
        text = []
        for raw in resp:
            line = raw.decode().strip()
            if line == "data: [DONE]":
                out["end"] = "done"
                break
            if line.startswith("data: "):
                d = json.loads(line[6:])
                for c in d.get("choices", []):
                    text.append(c["delta"].get("content") or "")
        out["text"] = "".join(text)
        out.setdefault("end", "truncated")
    except (OSError, http.client.HTTPException):
        out["end"] = "broken"
    finally:
        conn.close()


def test_killing_a_worker_mid_stream_loses_no_other_request(tmp_path: Path) -> None:
    words = " ".join(f"w{i}" for i in range(12))
    with OpenAIFake(default=Reply(text=words, chunk_delay=0.25)) as slow:
        config = (
            "providers:\n"
            + provider_yaml("slow", slow.base_url, ["fake-model"])
            + "routing: {state: memory}\nmetrics: {enabled: false}\n"
        )
        with GatewayProcess(tmp_path, config, workers=2) as gw:
            results: list[dict[str, object]] = []
            threads: list[threading.Thread] = []
            deadline = time.monotonic() + 30
            # open streams until both workers serve at least one
            while time.monotonic() < deadline:
                r: dict[str, object] = {}
                t = threading.Thread(target=_stream, args=(gw.url, r))
                t.start()
                results.append(r)
                threads.append(t)
                time.sleep(0.15)
                workers = {x.get("worker") for x in results if x.get("worker")}
                if len(workers) >= 2 and len(results) >= 4:
                    break
            assert len(workers) == 2, "the kernel never spread streams over both workers"
            while time.monotonic() < deadline and not all(x.get("worker") for x in results):
                time.sleep(0.05)  # every stream has begun before the kill
            victim = str(results[0]["worker"])
            os.kill(int(victim), signal.SIGKILL)
            for t in threads:
                t.join(timeout=60)
            for r in results:
                if r.get("worker") == victim:
                    assert r["end"] in ("broken", "truncated")
                    assert r["end"] != "done"
                else:  # the other worker's streams are whole
                    assert r["end"] == "done" and r["text"] == words, r
            # the supervisor replaced the dead worker; new requests are served
            time.sleep(1.0)
            out = openai.OpenAI(
                base_url=gw.url + "/v1", api_key="x", max_retries=0
            ).chat.completions.create(model="slow/fake-model", messages=ASK)
            assert out.choices[0].message.content == words
            assert len(gw.worker_pids()) == 2
            assert int(victim) not in gw.worker_pids()
        assert "starting another" in gw.stderr()


def _ensure_prometheus() -> str:
    exe = shutil.which("prometheus")
    if exe is None:
        root = Path(__file__).resolve().parent.parent
        subprocess.run(["bash", str(root / "scripts" / "setup-prometheus.sh")], check=True)
        exe = shutil.which("prometheus")
    assert exe is not None, "scripts/setup-prometheus.sh did not install prometheus"
    return exe


def _query(prom: str, promql: str) -> list[dict]:
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_real_prometheus_scrapes_requests_by_key_and_provider(
    tmp_path: Path, fakes: tuple[OpenAIFake, OpenAIFake]
) -> None:
    exe = _ensure_prometheus()
    _, good = fakes
    config = (
        "providers:\n"
        + provider_yaml("good", good.base_url, ["fake-model"])
        + "routing: {state: memory}\n"
        + f"metrics: {{sinks: [sqlite], sqlite: {{path: {tmp_path / 'm.db'}}}}}\n"
        + "serve:\n  keys:\n    team-a: {key_env: TEAM_A_KEY}\n"
        + "    team-b: {key_env: TEAM_B_KEY}\n"
    )
    env = {"TEAM_A_KEY": "sk-team-a-secret", "TEAM_B_KEY": "sk-team-b-secret"}
    with GatewayProcess(tmp_path, config, workers=2, env=env) as gw:
        for key, n in (("sk-team-a-secret", 3), ("sk-team-b-secret", 1)):
            client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
            for _ in range(n):
                client.chat.completions.create(model="good/fake-model", messages=ASK)
        target = gw.url.removeprefix("http://")
        port = free_port()
        (tmp_path / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s}\nscrape_configs:\n"
            f"  - job_name: llmcore\n    static_configs: [{{targets: ['{target}']}}]\n"
        )
        prom = subprocess.Popen(
            [
                exe,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "prom.log").open("w"),
            start_new_session=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 90
            got: dict[tuple[str, str], float] = {}
            while time.monotonic() < deadline:
                try:
                    rows = _query(
                        base,
                        'sum by (key, provider) (llmcore_gateway_requests_total{status="200"})',
                    )
                except OSError:
                    rows = []
                got = {
                    (r["metric"]["key"], r["metric"]["provider"]): float(r["value"][1])
                    for r in rows
                }
                if got.get(("team-a", "good")) == 3 and got.get(("team-b", "good")) == 1:
                    break
                time.sleep(0.5)
            assert got == {("team-a", "good"): 3.0, ("team-b", "good"): 1.0}, (
                tmp_path / "prom.log"
            ).read_text()[-2000:]
            sink = _query(base, 'sum(llmcore_requests_total{provider="good"})')
            assert float(sink[0]["value"][1]) == 4  # the prometheus sink, both workers
        finally:
            prom.send_signal(signal.SIGTERM)
            prom.wait(timeout=30)


def test_sigterm_lets_in_flight_requests_finish_then_refuses(tmp_path: Path) -> None:
    with OpenAIFake(default=Reply(text="late but whole", delay=2.0)) as slow:
        config = (
            "providers:\n"
            + provider_yaml("slow", slow.base_url, ["fake-model"])
            + "routing: {state: memory}\nmetrics: {enabled: false}\n"
        )
        gw = GatewayProcess(tmp_path, config, workers=2).start()
        try:
            got: dict[str, object] = {}

            def call() -> None:
                got["status"], got["body"], _ = gw.post(
                    "/v1/chat/completions", {"model": "slow/fake-model", "messages": ASK}
                )

            t = threading.Thread(target=call)
            t.start()
            time.sleep(0.8)  # the request is in flight, waiting on the upstream
            assert gw.proc is not None
            gw.proc.send_signal(signal.SIGTERM)
            t.join(timeout=30)
            assert got["status"] == 200
            assert got["body"]["choices"][0]["message"]["content"] == "late but whole"
            assert gw.proc.wait(timeout=30) == 0
            with pytest.raises(OSError):
                urllib.request.urlopen(gw.url + "/health", timeout=2)
            assert "stopping" in gw.stderr()
        finally:
            gw.stop()
