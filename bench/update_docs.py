"""Copy the latest benchmark table (bench/results/latest.md) into docs/performance.md.

``python -m bench && python -m bench.update_docs``: the table goes between the
``<!-- bench:begin -->`` and ``<!-- bench:end -->`` markers; the prose around it stays.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def main() -> int:
    table = (ROOT / "bench" / "results" / "latest.md").read_text(encoding="utf-8")
    doc_path = ROOT / "docs" / "performance.md"
    doc = doc_path.read_text(encoding="utf-8")
    if BEGIN not in doc or END not in doc:
        print(f"{doc_path}: the {BEGIN} / {END} markers are missing", file=sys.stderr)
        return 1
    head, rest = doc.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    doc_path.write_text(f"{head}{BEGIN}\n{table.strip()}\n{END}{tail}", encoding="utf-8")
    print(f"updated {doc_path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
