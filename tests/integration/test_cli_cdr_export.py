"""`callworker cdr export` over PostgreSQL: exact content in every format, flat memory."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import tracemalloc
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from callworker.cli import main
from callworker.contract import CDR_FIELDS
from callworker.store import make_engine, migrate
from callworker.store.models import CDRS

pytestmark = pytest.mark.integration

CALLWORKER = Path(sys.executable).with_name("callworker")
BASE = datetime(2026, 11, 1, tzinfo=UTC)
CAUSES = (("NORMAL_CLEARING", 16), ("USER_BUSY", 17), ("NO_ANSWER", 19))


@pytest.fixture(scope="module")
def engine(pg_url: str) -> Iterator[Engine]:
    migrate(pg_url)
    engine = make_engine(pg_url, pool_size=2)
    yield engine
    engine.dispose()


def generated(tenant: str, count: int, start: datetime) -> list[dict[str, Any]]:
    """CDR rows of every shape: unanswered ones with nulls, names needing quotes, equal start stamps."""
    rows = []
    for i in range(count):
        # Pairs share a start stamp: the pages must not lose or repeat one at a boundary.
        started = start + timedelta(seconds=i // 2, microseconds=17)
        answered = i % 3 != 0
        cause, q850 = CAUSES[i % 3]
        rows.append({
            "call_id": str(uuid.uuid4()), "tenant": tenant, "direction": "outbound" if i % 4 else "inbound",
            "caller_id_name": 'Desk, "Front"' if i % 5 == 0 else None, "caller_id_number": "+15550001111",
            "destination_number": f"+1555{i:07d}", "start_stamp": started,
            "answer_stamp": started + timedelta(seconds=2) if answered else None,
            "end_stamp": started + timedelta(seconds=2 + i % 90),
            "duration": 2 + i % 90, "billsec": i % 90 if answered else 0, "billmsec": (i % 90) * 1000 + 7,
            "hangup_cause": cause, "hangup_cause_q850": q850, "sip_hangup_disposition": "recv_bye",
            "pdd_ms": 500 + i, "rtp_audio_in_mos": 4.5 if answered else None, "read_codec": "PCMU",
            "write_codec": "PCMU", "missed_call": i % 4 == 0 and not answered, "node": "n1",
            "flashcall_order_id": None,
        })
    return rows


def insert(engine: Engine, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(CDRS.insert(), rows)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def wire(value: Any) -> Any:
    """A value as the contract carries it in JSON."""
    return iso(value) if isinstance(value, datetime) else value


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return iso(value) if isinstance(value, datetime) else str(value)


def in_billing_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda row: (row["start_stamp"], row["call_id"]))


@pytest.fixture(scope="module")
def billed(engine: Engine) -> tuple[str, list[dict[str, Any]]]:
    """3001 CDRs of one tenant in November, beside rows the export must leave out."""
    tenant = f"t{uuid.uuid4().hex[:10]}"
    rows = generated(tenant, 3001, BASE + timedelta(hours=1))
    insert(engine, rows)
    insert(engine, generated(f"{tenant}x", 50, BASE + timedelta(hours=1)))  # another tenant
    insert(engine, generated(tenant, 5, BASE - timedelta(seconds=10)))  # before --from
    insert(engine, generated(tenant, 5, BASE + timedelta(days=30)))  # at --to and after
    return tenant, rows


def export(pg_url: str, tenant: str, *extra: str) -> int:
    return main(["cdr", "export", "--tenant", tenant, "--from", "2026-11-01", "--to", "2026-12-01T00:00:00Z",
                 "--database-url", pg_url, *extra])


def test_csv_holds_every_cdr_of_the_range_in_order(
    pg_url: str, billed: tuple[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    tenant, rows = billed
    assert export(pg_url, tenant, "--page-size", "251") == 0  # odd: a page ends inside a pair
    out, err = capsys.readouterr()
    expected = ",".join(CDR_FIELDS) + "\r\n"
    for row in in_billing_order(rows):
        values = [cell(row.get(name)) for name in CDR_FIELDS]
        expected += ",".join(f'"{v.replace(chr(34), 2 * chr(34))}"' if "," in v or '"' in v else v
                             for v in values) + "\r\n"
    assert out == expected
    assert err == ""  # no progress bar when stderr is not a terminal
    assert len(list(csv.DictReader(io.StringIO(out)))) == 3001


def test_json_is_one_array_of_the_contract_cdrs(
    pg_url: str, billed: tuple[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    tenant, rows = billed
    assert export(pg_url, tenant, "--format", "json") == 0
    out = capsys.readouterr().out
    expected = [{name: wire(row.get(name)) for name in CDR_FIELDS} for row in in_billing_order(rows)]
    assert json.loads(out) == expected
    assert out.startswith("[\n{") and out.endswith("}\n]\n")
    assert export(pg_url, tenant, "--format", "jsonl") == 0
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == expected


def test_an_empty_range_is_a_header_or_an_empty_array(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    tenant = f"t{uuid.uuid4().hex[:10]}"
    assert export(pg_url, tenant) == 0
    assert capsys.readouterr().out == ",".join(CDR_FIELDS) + "\r\n"
    assert export(pg_url, tenant, "--format", "json") == 0
    assert json.loads(capsys.readouterr().out) == []


def peak_of_export(pg_url: str, tenant: str, output: Path) -> int:
    tracemalloc.start()
    try:
        assert export(pg_url, tenant, "--page-size", "200", "--output", str(output)) == 0
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_flat_as_the_rows_grow(
    engine: Engine, pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small, large = f"t{uuid.uuid4().hex[:10]}", f"t{uuid.uuid4().hex[:10]}"
    insert(engine, generated(small, 1000, BASE))
    insert(engine, generated(large, 6000, BASE))
    peak_of_export(pg_url, small, tmp_path / "warm-up.csv")  # caches of first use (compiled SQL) aside
    peaks = {tenant: peak_of_export(pg_url, tenant, tmp_path / f"{tenant}.csv") for tenant in (small, large)}
    sizes = {tenant: (tmp_path / f"{tenant}.csv").stat().st_size for tenant in (small, large)}
    assert sizes[large] > 5 * sizes[small]
    # Six times the rows, about the same peak: one page, not the export, is in memory.
    assert peaks[large] < 1.3 * peaks[small] + 64 * 1024, (peaks, sizes)
    assert not list(tmp_path.glob("*.partial"))
    assert capsys.readouterr().err.splitlines()[-1] == f"6000 CDRs written to {tmp_path / f'{large}.csv'}"


def test_a_failed_export_leaves_no_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "november.csv"
    status = main(["cdr", "export", "--tenant", "acme", "--from", "2026-11-01", "--to", "2026-12-01",
                   "--database-url", "postgresql://ops:s3cret-pw@127.0.0.1:1/nowhere", "--output", str(target)])
    err = capsys.readouterr().err
    assert status == 4 and err.startswith("callworker: database unavailable") and "s3cret-pw" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_missing_sqlite_database_is_refused_not_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "callworker.sqlite3"
    status = main(["cdr", "export", "--tenant", "acme", "--from", "2026-11-01", "--to", "2026-12-01",
                   "--database-url", f"sqlite:///{missing}"])
    assert status == 2
    assert capsys.readouterr().err == f"callworker: no database at {missing}: set CALLWORKER_DATABASE_URL\n"
    assert not missing.exists()


def test_from_must_precede_to(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["cdr", "export", "--tenant", "acme", "--from", "2026-12-01", "--to", "2026-11-01"])
    assert status == 2 and capsys.readouterr().err == "callworker: --from must come before --to\n"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_goes_to_a_terminal_stderr_only(
    pg_url: str, billed: tuple[str, list[dict[str, Any]]], tmp_path: Path, monkeypatch: Any
) -> None:
    tenant, _rows = billed
    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    target = tmp_path / "november.json"
    assert export(pg_url, tenant, "--format", "json", "--output", str(target)) == 0
    assert "3001/3001" in screen.getvalue()
    assert len(json.loads(target.read_text())) == 3001


def test_a_reader_that_goes_away_ends_the_export_quietly(
    pg_url: str, billed: tuple[str, list[dict[str, Any]]]
) -> None:
    tenant, _rows = billed
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLWORKER_")}
    env["CALLWORKER_DATABASE_URL"] = pg_url
    # As `callworker cdr export ... | head -1`: the pipe closes long before the end.
    export_ = subprocess.Popen(
        [str(CALLWORKER), "cdr", "export", "--tenant", tenant, "--from", "2026-11-01", "--to", "2026-12-01"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    assert export_.stdout is not None and export_.stderr is not None
    assert export_.stdout.readline() == ",".join(CDR_FIELDS) + "\n"
    export_.stdout.close()
    assert export_.wait(timeout=60) == 141
    assert export_.stderr.read() == ""
