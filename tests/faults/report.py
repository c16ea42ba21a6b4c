"""The figures tables (Markdown): commands, then events and calls; one row per fault and a total."""

from __future__ import annotations

import time
from pathlib import Path

from tests.faults.ledger import Figures

__all__ = ["render", "write_report"]

_COMMANDS = (
    ("sent", "sent"), ("answered", "replied"), ("originates", "originates"),
    ("executed once", "executed"), ("expired", "expired"), ("doubled", "doubled"),
    ("lost in transit", "in_transit"), ("never sent", "unsent"), ("republished", "republished"),
    ("replies repeated", "extra_replies"),
)
_EVENTS = (
    ("events expected", "expected"), ("published", "published"), ("missing", "missing"),
    ("duplicated", "duplicated"), ("out of order", "reordered"), ("calls", "calls"),
    ("one terminal", "one_terminal"), ("CDR rows", "cdr_rows"), ("call.cdr events", "cdr_events"),
    ("reconstructed", "reconstructed"), ("status ≠ FreeSWITCH", "status_differs"),
)


def render(results: list[tuple[str, Figures]]) -> str:
    total = Figures("total")
    for _, figures in results:
        total.add(figures)
    rows = [*results, ("**all**", total)]
    lines = ["Commands (`sent` counts republished copies; the others count command ids):", ""]
    lines += _table(rows, _COMMANDS)
    lines += ["", "Events and calls:", ""]
    lines += _table(rows, _EVENTS)
    problems = [f"- {figures.phase}: {p}" for _, figures in results for p in figures.problems]
    if problems:
        lines += ["", "Invariants broken:", *problems]
    return "\n".join(lines)


def _table(rows: list[tuple[str, Figures]], columns: tuple[tuple[str, str], ...]) -> list[str]:
    lines = [
        "| fault | " + " | ".join(title for title, _ in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for fault, figures in rows:
        lines.append(f"| {fault} | " + " | ".join(str(getattr(figures, name)) for _, name in columns) + " |")
    return lines


def write_report(path: Path, table: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    path.write_text(f"# Fault suite: latest figures ({stamp})\n\n{table}\n")
