"""Sequential chat through llmcore against a raw call and the libraries users pick instead.

One stub (:mod:`bench.stub`, pinned to core 0) answers every client; each client runs in a
fresh worker process pinned to core 1 (:mod:`bench.clients`) and times non-streaming chats,
and streamed chats (time to first chunk and total). Clients are run in rounds, in a
different order each round, and the median over all rounds is reported, so slow phases of
this shared machine hit every client alike. Ratios are against raw httpx in the same run
(for the Ollama API: raw httpx on ``/api/chat``).

Budgets (issue 7): llmcore sync chat ≤ 1.10x raw httpx; streaming time to first chunk ≤ raw
httpx + 0.2 ms. The "layers" group shows what the router, one hook and metrics each add.
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
from pathlib import Path

from bench import compare_env, stub
from bench.clients import CLIENTS

ROOT = Path(__file__).resolve().parent.parent
BASELINE = {"openai": "raw_httpx", "ollama": "ollama_raw_httpx"}
BUDGETED = {"llmcore", "llmcore_ollama"}
TTFC_SLACK_S = 0.0002
RATIO_BUDGET = 1.10


def _worker(python: str, name: str, url: str, n: int, warmup: int) -> dict[str, list[float]]:
    proc = subprocess.run(
        [python, "-m", "bench.clients", "--client", name, "--url", url, "--n", str(n),
         "--warmup", str(warmup), "--cpu", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip()
                           else f"exit {proc.returncode}")
    data: dict[str, list[float]] = json.loads(proc.stdout)
    return data


def collect(quick: bool) -> tuple[dict[str, dict[str, list[float]]], dict[str, str]]:
    rounds, n, warmup = (1, 150, 20) if quick else (3, 400, 50)
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
        for r in range(rounds):
            order = [c for c in CLIENTS if c not in errors]
            rng.shuffle(order)
            print(f"    round {r + 1}/{rounds}: {len(order)} clients x {n} requests",
                  file=sys.stderr)
            for name in order:
                try:
                    got = _worker(pythons[name], name, url, n, warmup)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    errors[name] = str(exc)
                    continue
                for key, values in got.items():
                    samples.setdefault(name, {}).setdefault(key, []).extend(values)
    return samples, errors


def run(quick: bool) -> list[dict]:
    samples, errors = collect(quick)
    med = {name: {k: statistics.median(v) for k, v in d.items()} for name, d in samples.items()}
    rows: list[dict] = []

    def row(group: str, name: str, value: float | None, unit: str = "µs", *,
            ratio: float | None = None, budget: str = "", met: bool | None = None,
            note: str = "") -> None:
        rows.append({"group": group, "name": name, "value": value, "unit": unit,
                     "ratio": ratio, "budget": budget, "met": met, "note": note or None})

    for key, label in (("plain", "chat, non-streaming"), ("ttfc", "stream, first chunk"),
                       ("total", "stream, total")):
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
                    budget, met = "≤ raw httpx + 0.2 ms", value <= base + TTFC_SLACK_S
                    note = f"{(value - base) * 1e6:+.0f} µs vs raw httpx"
            row(group, what, value * 1e6, ratio=ratio, budget=budget, met=met, note=note)

    # what each layer adds per non-streaming request (differences of medians)
    def delta(a: str, b: str) -> float | None:
        if a in med and b in med:
            return (med[a]["plain"] - med[b]["plain"]) * 1e6
        return None

    layers = [
        ("provider alone over raw httpx (request/response mapping)", "llmcore_provider",
         "raw_httpx"),
        ("router + hook dispatch (Client over the provider alone)", "llmcore",
         "llmcore_provider"),
        ("one pass-through generation hook", "llmcore_hook", "llmcore"),
        ("metrics on, default sqlite sink", "llmcore_metrics", "llmcore"),
    ]
    for i, (label, a, b) in enumerate(layers):
        row("core: layers", label, delta(a, b), "µs/request",
            note="" if i else "each layer: difference of medians of non-streaming chats; "
                              "tens of µs either way are noise on this shared machine")
    return rows


if __name__ == "__main__":
    import pprint

    pprint.pprint(run(quick="--quick" in sys.argv))
