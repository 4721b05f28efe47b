"""``orchlog bench``: run the standard set, print a table, write bench-results.json/.md (+ PNG).

Every server figure sits next to a baseline measured in the same run (raw sqlite3 executemany,
the naive per-row commit) so noisy shared machines still give comparable ratios.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import fanout, hook, ingest, qfilter, replay

SUITES: dict[str, Callable[[bool], list[dict[str, Any]]]] = {
    "ingest": lambda quick: ingest.main(quick),
    "fanout": lambda quick: fanout.main(quick) + qfilter.main(quick),
    "catchup": lambda quick: [replay.catchup(200_000 if quick else 1_000_000)],
    "memory": lambda quick: replay.memory((1000,) if quick else (1000, 5000)),
    "tail": lambda quick: [replay.tail_cli(50_000 if quick else 200_000)],
    "hook": lambda quick: hook.main(quick),
}


TABLE_HEAD = "| case | deliveries/s | p50 | p99 | server CPU | note |\n|---|---|---|---|---|---|"


def issue_table(rows: list[dict[str, Any]]) -> str:
    """Fan-out (with the non-matching ``q`` case) and catch-up rows (WS and SSE) in the live-path
    issue's table shape ('' if there are none)."""
    lines = [fanout.table_row(r) for r in rows if r["name"] == "fanout"]
    lines += [qfilter.table_row(r) for r in rows if r["name"] == "qfilter"]
    lines += [line for r in rows if r["name"] == "catchup" for line in replay.table_rows(r)]
    return TABLE_HEAD + "\n" + "\n".join(lines) + "\n" if lines else ""


def to_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| benchmark | figures |", "|---|---|"]
    for row in rows:
        figures = ", ".join(f"{k}={v}" for k, v in row.items() if k != "name")
        lines.append(f"| {row['name']} | {figures} |")
    return "\n".join(lines) + "\n"


def chart(rows: list[dict[str, Any]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    ingest_rows = [r for r in rows if r["name"].startswith("ingest")]
    if not ingest_rows:
        return False
    labels = [
        r["name"].replace("ingest_", "") + (f"\n{r['clients']}c x {r['batch']}" if "batch" in r else "")
        for r in ingest_rows
    ]
    values = [r["events_per_s"] for r in ingest_rows]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(labels, values, color="#4c78a8")
    ax.set_ylabel("events/s committed")
    ax.set_title("orchlog ingest vs baselines (same run)")
    fig.tight_layout()
    fig.savefig(path)
    return True


def run(names: list[str], quick: bool, out_dir: Path, prefill_rows: tuple[int, ...] = (0,)) -> list[dict[str, Any]]:
    """``prefill_rows``: the ingest suite runs once per table size (events already stored)."""
    rows: list[dict[str, Any]] = []
    for name in names:
        started = time.monotonic()
        result = ingest.main(quick, prefill_rows) if name == "ingest" else SUITES[name](quick)
        for row in result:
            print(json.dumps(row), flush=True)
        rows.extend(result)
        table = "\n".join(t for t in (ingest.table(result), issue_table(result)) if t)
        if table:
            print(table, end="", flush=True)
        print(f"# {name}: {time.monotonic() - started:.0f}s", flush=True)
    meta = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "quick": quick,
        "prefill_rows": list(prefill_rows),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (out_dir / "bench-results.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    tables = [t for t in (ingest.table(rows), issue_table(rows)) if t]
    (out_dir / "bench-results.md").write_text("\n".join([*tables, to_markdown(rows)]))
    if chart(rows, out_dir / "bench-results.png"):
        print("# chart: bench-results.png")
    return rows
