"""``callworker cdr export``: a tenant's CDRs of a time range, streamed for billing.

Read straight from the database (an operator's tool, run where it is reachable), in
pages through ``store/``: memory stays flat whatever the range. Rows come oldest
first (start_stamp, then call_id), the CDR fields of the contract in its order, each
value as the ``call.cdr`` event carries it. With ``--output`` the file appears only
once complete: it is written beside, as ``FILE.partial``, and renamed at the end.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from callworker.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    add_database_option,
    add_tenant_option,
    database_url,
    timestamp,
)
from callworker.contract import CDR_FIELDS, cdr_data
from callworker.store import count_cdrs, iter_cdrs, open_existing

__all__ = ["FORMATS", "add_cdr_commands", "csv_cell", "write_cdrs"]

FORMATS = ("csv", "json", "jsonl")
_PROGRESS_EVERY = 250


def csv_cell(value: Any) -> str:
    """A CDR value in a CSV cell: empty for null, true/false, JSON for lists (recordings)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def write_cdrs(records: Iterable[dict[str, Any]], out: IO[str], fmt: str) -> int:
    """Write contract CDRs to ``out`` as csv, json (one array) or jsonl; returns how many."""
    written = 0
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180, as spreadsheets expect
        writer.writerow(CDR_FIELDS)
        for record in records:
            writer.writerow([csv_cell(record.get(name)) for name in CDR_FIELDS])
            written += 1
    elif fmt == "json":
        out.write("[")
        for record in records:
            out.write(",\n" if written else "\n")
            out.write(json.dumps(record, ensure_ascii=False))
            written += 1
        out.write("\n]\n" if written else "]\n")
    else:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            written += 1
    out.flush()
    return written


def _with_progress(records: Iterator[dict[str, Any]], total: int, stderr: IO[str]) -> Iterator[dict[str, Any]]:
    """The same records, moving a bar on ``stderr`` as they pass (only drawn on a terminal)."""
    if not stderr.isatty():
        yield from records
        return
    columns = (TextColumn("CDRs"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(file=stderr), transient=False) as progress:
        task = progress.add_task("export", total=total)
        for done, record in enumerate(records, 1):
            yield record
            if done % _PROGRESS_EVERY == 0:
                progress.update(task, completed=done)
        progress.update(task, completed=total)


@contextmanager
def _destination(output: str | None) -> Iterator[IO[str]]:
    """stdout, or a file that takes its name only when everything is written."""
    if output is None or output == "-":
        yield sys.stdout
        return
    final = Path(output)
    partial = final.with_name(final.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as out:
            yield out
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)


def run_export(args: argparse.Namespace) -> int:
    if args.from_ >= args.to:
        raise CliError("--from must come before --to", EXIT_USAGE)
    engine = open_existing(database_url(args))
    try:
        total = count_cdrs(engine, args.tenant, args.from_, args.to)
        rows = iter_cdrs(engine, args.tenant, args.from_, args.to, page=args.page_size)
        records = _with_progress((cdr_data(row) for row in rows), total, sys.stderr)
        with _destination(args.output) as out:
            written = write_cdrs(records, out, args.format)
    finally:
        engine.dispose()
    if args.output not in (None, "-"):
        print(f"{written} CDRs written to {args.output}", file=sys.stderr, flush=True)
    return EXIT_OK


def add_cdr_commands(commands: Any) -> None:
    group = commands.add_parser("cdr", help="call detail records")
    sub = group.add_subparsers(dest="cdr_command", required=True, metavar="COMMAND")
    export = sub.add_parser("export", help="stream a tenant's CDRs of a time range (for billing)")
    add_tenant_option(export, required=True)
    export.add_argument("--from", dest="from_", type=timestamp, required=True, metavar="TIME",
                        help="start_stamp at or after (ISO 8601; a date is its midnight; no offset means UTC)")
    export.add_argument("--to", type=timestamp, required=True, metavar="TIME", help="start_stamp before")
    export.add_argument("--format", choices=FORMATS, default="csv",
                        help="csv (default), json (one array) or jsonl (one record per line)")
    export.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")
    export.add_argument("--page-size", type=int, default=1000, metavar="N", help=argparse.SUPPRESS)
    add_database_option(export)
    export.set_defaults(func=run_export, quiet_logs=True)
