"""The benchmark's page: date, machine, command, code and the result table, as Markdown.

A run of every figure writes ``docs/benchmark-latest.md``, the page the README
links; a partial or ``--quick`` run writes ``bench-results/latest.md`` (ignored by
git), so a smoke run never replaces the recorded figures. Nothing here runs a
benchmark: ``bench/run.py`` hands over the rows.
"""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import Row, render_table

__all__ = ["LATEST", "SCRATCH", "RunInfo", "code_version", "machine", "render_report", "report_path", "write_report"]

REPO = Path(__file__).resolve().parents[1]
LATEST = REPO / "docs" / "benchmark-latest.md"
SCRATCH = REPO / "bench-results" / "latest.md"


@dataclass(frozen=True)
class RunInfo:
    """What the page says about the run besides its rows."""

    when: str  # e.g. "2026-11-23 02:45 UTC"
    command: str  # as typed, e.g. "python bench/run.py"
    runs: int  # runs per figure (the table shows medians)
    minutes: float  # wall time of the whole benchmark
    code: str  # the commit measured, e.g. "ac1764f"
    code_changed: bool = False  # the working tree had uncommitted changes
    soak_minutes: float | None = None  # None: no soak in this run


def render_report(rows: Sequence[Row], info: RunInfo, machine_text: str) -> str:
    """The whole page, ending with a newline."""
    runs = f"medians of {info.runs} runs" if info.runs > 1 else "one run each"
    if info.soak_minutes is not None:
        runs += f", the soak one run of {info.soak_minutes:g} minutes"
    return "\n".join([
        f"# callworker benchmark, {info.when}",
        "",
        "Written by `make bench` (`bench/run.py`), not by hand. How each figure is measured, and how",
        "to read it: [performance.md](performance.md).",
        "",
        f"Command: `{info.command}` ({runs}; {info.minutes:.1f} minutes in all).",
        "",
        f"Code: commit `{info.code}`{' with uncommitted changes' if info.code_changed else ''}.",
        "",
        render_table(rows),
        "",
        "Machine:",
        "",
        machine_text,
        "",
    ])


def report_path(*, all_figures: bool, quick: bool, output: str | None = None) -> Path:
    """Where a run's page goes: an explicit path, else the recorded page only for a full run."""
    if output:
        return Path(output)
    return LATEST if all_figures and not quick else SCRATCH


def write_report(text: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def machine() -> str:
    """CPU, cores, Python, kernel and memory of this machine, as a Markdown list."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
               platform.processor() or "unknown")
    memory = subprocess.run(["free", "-h"], capture_output=True, text=True, check=False).stdout.rstrip()
    return "\n".join([
        f"- CPU: {cpu}, `nproc` = {os.cpu_count()}",
        (f"- Python {platform.python_version()} ({platform.python_implementation()}), "
         f"{platform.system()} {platform.release()}"),
        "- `free -h`:", "", "```", memory, "```",
    ])


def code_version() -> tuple[str, bool]:
    """The short commit of the working tree, and whether it had changes (the page itself aside)."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "unknown", False
    page = LATEST.relative_to(REPO).as_posix()
    changed = git("status", "--porcelain", "--", ".", f":(exclude){page}")
    return commit, bool(changed)
