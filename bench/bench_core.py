"""Sequential chat through llmcore against a raw call and the libraries users pick instead.

One stub (:mod:`bench.stub`, pinned to core 0) answers every client; each client runs in a
worker process of its own pinned to core 1 (:mod:`bench.clients`) and times non-streaming
chats and streamed chats (time to first chunk and total). The workers start together and
are asked in turn, in a shuffled order each round, for small batches of 25 requests, and
the median over all batches is reported, so the busy and quiet phases of this shared
machine fall on every client alike. Ratios are against raw httpx in the same run
(for the Ollama API: raw httpx on ``/api/chat``).

Budgets (issue 12), with the default metrics sink on: llmcore sync chat ≤ 1.05x raw httpx;
streaming time to first chunk ≤ raw httpx + 0.1 ms; the Ollama plugin the same. The
"layers" group shows what the router, one hook and metrics each add.
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import compare_env, stub
from bench.clients import CLIENTS

ROOT = Path(__file__).resolve().parent.parent
BASELINE = {"openai": "raw_httpx", "ollama": "ollama_raw_httpx"}
# The budgets hold with the default metrics sink on (issue 12).
BUDGETED = {"llmcore_metrics", "llmcore_ollama"}
TTFC_SLACK_S = 0.0001
RATIO_BUDGET = 1.05


class Worker:
    """One client in its own process (:mod:`bench.clients`), measured batch by batch."""

    def __init__(self, python: str, name: str, url: str, warmup: int) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [
                python,
                "-m",
                "bench.clients",
                "--client",
                name,
                "--url",
                url,
                "--warmup",
                str(warmup),
                "--cpu",
                "1",
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_ready(self) -> None:
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            self.fail()

    def batch(self, n: int) -> dict[str, list[float]]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{n}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            self.fail()
        data: dict[str, list[float]] = json.loads(line)
        return data

    def fail(self) -> None:
        self.close()
        assert self.proc.stderr is not None
        err = self.proc.stderr.read().strip().splitlines()
        raise RuntimeError(err[-1] if err else f"worker exited with {self.proc.returncode}")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("0\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def collect(quick: bool) -> tuple[dict[str, dict[str, list[float]]], dict[str, str]]:
    """Run every client in small batches, in turn and in a shuffled order each round."""
    batches, size, warmup = (6, 25, 20) if quick else (20, 25, 50)
    pythons = {name: sys.executable for name in CLIENTS}
    errors: dict[str, str] = {}
    litellm = compare_env.python_for("litellm")
    if litellm is None:
        errors["litellm"] = "LiteLLM could not be installed (see the log above)"
    else:
        pythons["litellm"] = str(litellm)
    samples: dict[str, dict[str, list[float]]] = {}
    rng = random.Random(7)
    with stub.running(cpu=0) as url:
        workers = [Worker(pythons[n], n, url, warmup) for n in CLIENTS if n not in errors]
        try:
            live = []
            for w in workers:
                try:
                    w.wait_ready()
                    live.append(w)
                except RuntimeError as exc:
                    errors[w.name] = str(exc)
            print(f"    {len(live)} clients x {batches} batches x {size} requests", file=sys.stderr)
            for _ in range(batches):
                rng.shuffle(live)
                for w in list(live):
                    try:
                        got = w.batch(size)
                    except RuntimeError as exc:
                        errors[w.name] = str(exc)
                        live.remove(w)
                        continue
                    for key, values in got.items():
                        samples.setdefault(w.name, {}).setdefault(key, []).extend(values)
        finally:
            for w in workers:
                w.close()
    return samples, errors


def run(quick: bool) -> list[dict]:
    samples, errors = collect(quick)
    med = {name: {k: statistics.median(v) for k, v in d.items()} for name, d in samples.items()}
    rows: list[dict] = []

    def row(
        group: str,
        name: str,
        value: float | None,
        unit: str = "µs",
        *,
        ratio: float | None = None,
        budget: str = "",
        met: bool | None = None,
        note: str = "",
    ) -> None:
        rows.append(
            {
                "group": group,
                "name": name,
                "value": value,
                "unit": unit,
                "ratio": ratio,
                "budget": budget,
                "met": met,
                "note": note or None,
            }
        )

    for key, label in (
        ("plain", "chat, non-streaming"),
        ("ttfc", "stream, first chunk"),
        ("total", "stream, total"),
    ):
        group = f"core: {label}"
        for name, (api, what) in CLIENTS.items():
            if name in errors and name not in med:
                row(group, what, None, note=f"not measured: {errors[name]}")
                continue
            value = med[name][key]
            base = med.get(BASELINE[api], {}).get(key)
            ratio = value / base if base else None
            budget, met, note = "", None, ""
            if name in BUDGETED and base:
                if key == "plain":
                    budget, met = f"≤ {RATIO_BUDGET:.2f}x raw httpx", ratio <= RATIO_BUDGET
                elif key == "ttfc":
                    budget, met = "≤ raw httpx + 0.1 ms", value <= base + TTFC_SLACK_S
                    note = f"{(value - base) * 1e6:+.0f} µs vs raw httpx"
            row(group, what, value * 1e6, ratio=ratio, budget=budget, met=met, note=note)

    rows.extend(layer_rows(quick))
    return rows


if __name__ == "__main__":
    import pprint

    pprint.pprint(run(quick="--quick" in sys.argv))


def layer_rows(quick: bool) -> list[dict]:
    """What the router, one hook and metrics each cost, without any network in the way.

    The provider's ``chat`` is replaced by one that returns a ready answer, so a call is
    pure llmcore: building the request, planning, retry bookkeeping, hooks, metrics. The
    variants are timed in turn, in batches, in this process.
    """
    import os
    import tempfile

    import llmcore
    from llmcore.config import parse_config
    from llmcore.plugins import PluginManager
    from llmcore.types import ChatRequest, ChatResponse, Message, Usage

    from bench.clients import PassThroughHook, llmcore_config

    saved = {
        v: os.environ.get(v)
        for v in ("XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME")
    }
    home = tempfile.mkdtemp(prefix="llmcore-bench-")
    for v in saved:
        os.environ[v] = os.path.join(home, v.lower())
    answer = ChatResponse(
        content="ok", model="bench-model", usage=Usage(5, 2), finish_reason="stop"
    )

    def client(metrics: bool = False, hook: bool = False) -> llmcore.Client:
        pm = PluginManager()
        if hook:
            pm.register(PassThroughHook(), name="bench-hook")
        text = llmcore_config("http://127.0.0.1:9", "openai", metrics)
        c = llmcore.Client(parse_config(text), plugin_manager=pm)
        c.runtime.providers["stub"].chat = lambda request: answer  # type: ignore[method-assign]
        return c

    bare, with_hook, with_metrics = client(), client(hook=True), client(metrics=True)
    provider = bare.runtime.providers["stub"]
    msgs = [{"role": "user", "content": "hi"}]
    variants = {
        "provider": lambda: provider.chat(
            ChatRequest(messages=[Message("user", "hi")], model="bench-model")
        ),
        "client": lambda: bare.chat(msgs),
        "hook": lambda: with_hook.chat(msgs),
        "metrics": lambda: with_metrics.chat(msgs),
    }
    # few enough calls that the sqlite sink's queue (10,000 events, 2 per call) never
    # overflows: past that it drops events, and dropping is cheaper than recording
    batches, size = (10, 100) if quick else (30, 100)
    per_call: dict[str, list[float]] = {k: [] for k in variants}
    try:
        for fn in variants.values():
            for _ in range(50):
                fn()
        clock = time.perf_counter
        for _ in range(batches):
            for name, fn in variants.items():
                t0 = clock()
                for _ in range(size):
                    fn()
                per_call[name].append((clock() - t0) / size)
    finally:
        for c in (bare, with_hook, with_metrics):
            c.close()
        for v, old in saved.items():
            if old is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = old
    med = {k: statistics.median(v) * 1e6 for k, v in per_call.items()}
    note = (
        "no network: the provider returns a ready answer, so this is llmcore's own "
        "work per call; median of batches"
    )
    return [
        {
            "group": "core: layers",
            "name": "Client.chat, router + hooks, metrics off",
            "value": med["client"] - med["provider"],
            "unit": "µs/call",
            "note": note,
        },
        {
            "group": "core: layers",
            "name": "+ one pass-through generation hook",
            "value": med["hook"] - med["client"],
            "unit": "µs/call",
        },
        {
            "group": "core: layers",
            "name": "+ metrics on (default sqlite sink)",
            "value": med["metrics"] - med["client"],
            "unit": "µs/call",
        },
        {
            "group": "core: layers",
            "name": "the provider's own call (reference)",
            "value": med["provider"],
            "unit": "µs/call",
        },
    ]
