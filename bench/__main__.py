"""Run every benchmark module and write a Markdown table and JSON.

Each ``bench/bench_<name>.py`` defines ``run(quick: bool) -> list[dict]``; a row has
``group``, ``name``, ``value``, ``unit``, and optionally ``ratio`` (against the baseline
measured in the same run), ``budget`` (text) and ``met`` (bool or None).

Usage: ``python -m bench [--quick] [--only NAME] [--out bench/results]``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, {cpu}, "
        f"Python {platform.python_version()}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench")
    ap.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    ap.add_argument("--only", action="append", default=[], help="run only these modules")
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args()
    sys.path.insert(0, str(HERE.parent))
    rows: list[dict] = []
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    for name in names:
        short = name.removeprefix("bench_")
        if args.only and short not in args.only:
            continue
        print(f"==> {short}", file=sys.stderr)
        t0 = time.monotonic()
        module = importlib.import_module(f"bench.{name}")
        try:
            got = module.run(quick=args.quick)
        except Exception as exc:  # one broken benchmark must not hide the others
            got = [
                {
                    "group": short,
                    "name": "error",
                    "value": None,
                    "unit": "",
                    "note": f"{type(exc).__name__}: {exc}",
                }
            ]
        for r in got:
            r.setdefault("group", short)
        rows.extend(got)
        print(f"    {time.monotonic() - t0:.1f}s", file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "quick": args.quick,
    }
    (out / "latest.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    md = render(meta, rows)
    (out / "latest.md").write_text(md)
    print(md)
    return 0


def fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return "" if v is None else str(v)


def render(meta: dict, rows: list[dict]) -> str:
    lines = [
        f"Machine: {meta['machine']}  ",
        f"Date: {meta['date']}" + ("  (quick run)" if meta["quick"] else ""),
        "",
        "| group | measurement | value | unit | ratio | budget | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        met = {True: "yes", False: "**no**", None: ""}[r.get("met")]
        lines.append(
            f"| {r['group']} | {r['name']} | {fmt(r.get('value'))} | {r.get('unit', '')}"
            f" | {fmt(r.get('ratio'))} | {r.get('budget', '')} | {met} |"
        )
    notes = [f"- {r['group']}/{r['name']}: {r['note']}" for r in rows if r.get("note")]
    return "\n".join(lines + (["", *notes] if notes else [])) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
