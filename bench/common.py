"""What every figure shares: options, result rows, statistics, the Markdown table, logging."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "Options",
    "Row",
    "fmt_mb",
    "fmt_ms",
    "fmt_rate",
    "log",
    "median",
    "percentile",
    "render_table",
]

_STARTED = time.monotonic()


@dataclass(frozen=True)
class Options:
    """How long and how often each figure runs."""

    quick: bool = False
    runs: int = 3
    soak_seconds: float = 600.0
    cps: float = 300.0
    cps_seconds: float = 60.0
    latency_rate: float = 100.0
    latency_seconds: float = 30.0
    live_calls: int = 10_000
    profile_dir: str | None = None  # write a worker profile per pipeline run here
    quiet_wait: float = 60.0  # seconds to wait for an idle machine before each run
    policy: bool = False  # run the CPS figure's worker with a policy in force (see stack.policy_file)


@dataclass
class Row:
    """One line of the result table."""

    figure: str
    result: str
    reference: str = "—"
    target: str = "—"
    met: bool | None = None  # None: no target
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if self.met is None:
            return "—"
        return "yes" if self.met else "**no**"


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a sample."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def fmt_rate(value: float, unit: str = "/s") -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:,.0f}{unit}"


def fmt_ms(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.1f} ms" if value < 100 else f"{value:,.0f} ms"


def fmt_mb(value_bytes: float) -> str:
    return f"{value_bytes / (1 << 20):,.1f} MB"


def render_table(rows: Sequence[Row]) -> str:
    lines = [
        "| figure | result | reference (same run) | target | met? |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [row.figure, row.result, row.reference, row.target, row.verdict]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    notes = [(row.figure, note) for row in rows for note in row.notes]
    if notes:
        lines.append("")
        lines += [f"- {figure}: {note}" for figure, note in notes]
    return "\n".join(lines)


def log(message: str) -> None:
    """Progress on stderr, so stdout keeps only the table."""
    elapsed = time.monotonic() - _STARTED
    print(f"[bench {elapsed:7.1f}s] {message}", file=sys.stderr, flush=True)
