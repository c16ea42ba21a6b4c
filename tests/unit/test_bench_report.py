"""The benchmark's page: what ``make bench`` writes to docs/benchmark-latest.md, from sample figures.

The benchmark itself takes half an hour; its page is rendered and written by
``bench/report.py`` from the rows the figures return, so that path is checked here
with made-up rows, and the page in the repository is checked to be one it wrote.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.common import Row
from bench.report import LATEST, SCRATCH, RunInfo, render_report, report_path, write_report

REPO = Path(__file__).resolve().parents[2]

MACHINE = "- CPU: Test CPU, `nproc` = 2\n- Python 3.11.7 (CPython), Linux 6.0"


def sample_rows() -> list[Row]:
    return [
        Row(figure="calls per second sustained", result="300 CPS sustained for 60 s (3/3 runs)",
            target="≥ 300 CPS", met=True, notes=["zero loss over 18,000 calls"]),
        Row(figure="command published → reply received, p50 / p99", result="4.6 ms / 26.0 ms",
            reference="raw pika round trip: 0.8 ms / 1.3 ms", target="p99 ≤ 20 ms", met=False),
        Row(figure="parser | json", result="16,096/s"),
    ]


def info(**changes: object) -> RunInfo:
    fields: dict[str, object] = dict(when="2026-11-23 02:45 UTC", command="python bench/run.py", runs=3,
                                     minutes=23.84, code="ac1764f", soak_minutes=10.0)
    fields.update(changes)
    return RunInfo(**fields)  # type: ignore[arg-type]


def test_the_page_gives_date_command_code_table_and_machine() -> None:
    page = render_report(sample_rows(), info(), MACHINE)
    lines = page.splitlines()
    assert lines[0] == "# callworker benchmark, 2026-11-23 02:45 UTC"
    assert ("Command: `python bench/run.py` (medians of 3 runs, the soak one run of 10 minutes; "
            "23.8 minutes in all).") in lines
    assert "Code: commit `ac1764f`." in lines
    assert "| figure | result | reference (same run) | target | met? |" in lines
    assert "| calls per second sustained | 300 CPS sustained for 60 s (3/3 runs) | — | ≥ 300 CPS | yes |" in lines
    # A missed target stands out; a row without a target has no verdict.
    assert ("| command published → reply received, p50 / p99 | 4.6 ms / 26.0 ms | "
            "raw pika round trip: 0.8 ms / 1.3 ms | p99 ≤ 20 ms | **no** |") in lines
    # A pipe inside a cell must not split the Markdown row.
    assert r"| parser \| json | 16,096/s | — | — | — |" in lines
    assert "- calls per second sustained: zero loss over 18,000 calls" in lines
    assert page.endswith(MACHINE + "\n")
    assert page.index("| figure |") < page.index("Machine:")


def test_a_single_run_without_soak_and_a_changed_tree_say_so() -> None:
    page = render_report(sample_rows(), info(runs=1, soak_minutes=None, code_changed=True), MACHINE)
    assert "Command: `python bench/run.py` (one run each; 23.8 minutes in all)." in page
    assert "Code: commit `ac1764f` with uncommitted changes." in page


def test_the_page_is_written_where_asked(tmp_path: Path) -> None:
    target = tmp_path / "docs" / "benchmark-latest.md"
    page = render_report(sample_rows(), info(), MACHINE)
    assert write_report(page, target) == target
    assert target.read_text(encoding="utf-8") == page


@pytest.mark.parametrize(
    ("all_figures", "quick", "output", "expected"),
    [
        (True, False, None, LATEST),
        (True, True, None, SCRATCH),  # a smoke run never replaces the recorded figures
        (False, False, None, SCRATCH),  # nor does a run of some figures
        (False, True, "elsewhere.md", Path("elsewhere.md")),
    ],
)
def test_only_a_full_run_replaces_the_recorded_page(
    all_figures: bool, quick: bool, output: str | None, expected: Path
) -> None:
    assert report_path(all_figures=all_figures, quick=quick, output=output) == expected


def test_the_recorded_page_is_the_generators_and_the_readme_links_it() -> None:
    assert LATEST == REPO / "docs" / "benchmark-latest.md"
    page = LATEST.read_text(encoding="utf-8")
    lines = page.splitlines()
    assert re.fullmatch(r"# callworker benchmark, \d{4}-\d\d-\d\d \d\d:\d\d \S+", lines[0])
    assert any(re.fullmatch(r"Command: `python bench/run\.py[^`]*` \(.+ minutes in all\)\.", line) for line in lines)
    assert any(re.fullmatch(r"Code: commit `[0-9a-f]{7,40}`( with uncommitted changes)?\.", line) for line in lines)
    header = render_report([], info(), "").splitlines()
    table_head = header.index("| figure | result | reference (same run) | target | met? |")
    assert header[table_head:table_head + 2] == lines[lines.index(header[table_head]):][:2]
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| figure")]
    assert rows and all(line.rstrip().endswith(("| yes |", "| **no** |", "| — |")) for line in rows)
    assert "Machine:" in lines
    assert "docs/benchmark-latest.md" in (REPO / "README.md").read_text(encoding="utf-8")
