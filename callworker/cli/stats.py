"""``callworker stats``: the KPIs of ``stats.get`` (CONTRACT section 3) as tables.

The numbers are the worker's: each is shown as ``stats.get`` answers it, only
rounded. A worker without ``stats.get`` answers UNKNOWN_COMMAND, which is said in
plain words.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich import box
from rich.table import Table

from callworker.bus.upstream import Upstream
from callworker.cli.common import (
    EXIT_ERROR_REPLY,
    EXIT_NO_REPLY,
    EXIT_OK,
    CliError,
    add_amqp_option,
    add_tenant_option,
    amqp_url,
    print_json,
    show,
    timestamp,
)
from callworker.cli.show import error_lines
from callworker.contract import to_iso

__all__ = ["add_stats_command", "stats_tables"]

GROUP_BY = ("none", "gateway", "hour", "day")
# (heading, key) of the KPI table, in the contract's order.
_KPIS = (
    ("calls", "calls"), ("answered", "answered"), ("failed", "failed"), ("cancelled", "cancelled"),
    ("ASR", "asr"), ("NER", "ner"), ("ACD s", "acd_s"), ("PDD p50 ms", "pdd_ms_p50"),
    ("PDD p95 ms", "pdd_ms_p95"), ("minutes", "minutes"), ("cost cents", "cost_cents"), ("MOS", "avg_mos"),
)
_TOP_CAUSES = 10


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"
    return str(value)


def _key(group: Mapping[str, Any], group_by: str | None = None) -> str:
    key = group.get("key")
    if key is None and group_by == "gateway":
        return "no-gateway"  # inbound calls, and calls stored before gateways were kept
    return "all" if key in (None, "", "none") else str(key)


def stats_tables(groups: Sequence[Mapping[str, Any]], group_by: str | None = None) -> list[Table]:
    """The KPI table, the hangup causes of each group, and flash calls when there were any."""
    kpis = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title="calls", title_justify="left")
    kpis.add_column("group", no_wrap=True)
    for heading, _key_name in _KPIS:
        kpis.add_column(heading, justify="right", no_wrap=True)
    for group in groups:
        kpis.add_row(_key(group, group_by), *(_number(group.get(name)) for _heading, name in _KPIS))
    tables = [kpis]

    causes = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title="hangup causes", title_justify="left")
    for heading in ("group", "cause", "calls"):
        causes.add_column(heading, no_wrap=True, justify="right" if heading == "calls" else "left")
    for group in groups:
        counts = group.get("hangup_causes") if isinstance(group.get("hangup_causes"), dict) else {}
        assert isinstance(counts, dict)
        ranked = sorted(counts.items(), key=lambda item: (-int(item[1] or 0), str(item[0])))
        for cause, count in ranked[:_TOP_CAUSES]:
            causes.add_row(_key(group, group_by), str(cause), _number(count))
    if causes.row_count:
        tables.append(causes)

    flash = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title="flash calls", title_justify="left")
    for heading in ("group", "orders", "verified", "conversion"):
        flash.add_column(heading, no_wrap=True, justify="left" if heading == "group" else "right")
    for group in groups:
        orders = group.get("flashcall") if isinstance(group.get("flashcall"), dict) else None
        if orders and orders.get("orders"):
            figures = (_number(orders.get(name)) for name in ("orders", "verified", "conversion"))
            flash.add_row(_key(group, group_by), *figures)
    if flash.row_count:
        tables.append(flash)
    return tables


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    fields = {
        "from": to_iso(args.from_) if args.from_ else None, "to": to_iso(args.to) if args.to else None,
        "group_by": args.group_by, "tenant": args.of_tenant,
    }
    return {key: value for key, value in fields.items() if value is not None}


def run_stats(args: argparse.Namespace) -> int:
    with Upstream(amqp_url(args)) as upstream:
        reply = upstream.ask(args.tenant, "stats.get", _fields(args), args.reply_timeout)
    if reply is None:
        raise CliError(f"no reply to stats.get within {args.reply_timeout:g} s: is a worker running?", EXIT_NO_REPLY)
    if args.json:
        print_json(reply)
        return EXIT_OK if reply.get("ok") is True else EXIT_ERROR_REPLY
    if reply.get("ok") is not True:
        error = reply.get("error") if isinstance(reply.get("error"), dict) else {}
        if isinstance(error, dict) and error.get("code") == "UNKNOWN_COMMAND":
            print("callworker: the worker does not answer stats.get (UNKNOWN_COMMAND): it predates the "
                  "statistics, or they are reserved to the admin tenant here", file=sys.stderr, flush=True)
        else:
            print("\n".join(error_lines(reply)), file=sys.stderr, flush=True)
        return EXIT_ERROR_REPLY
    result = reply.get("result") if isinstance(reply.get("result"), dict) else {}
    groups = [g for g in (result or {}).get("groups") or [] if isinstance(g, dict)]
    show(*stats_tables(groups, args.group_by))
    return EXIT_OK


def add_stats_command(commands: Any) -> None:
    p = commands.add_parser("stats", help="call KPIs (stats.get): ASR, NER, ACD, PDD, minutes, causes")
    add_tenant_option(p, required=True)
    p.add_argument("--from", dest="from_", type=timestamp, metavar="TIME", help="default: 24 h ago")
    p.add_argument("--to", type=timestamp, metavar="TIME", help="default: now")
    p.add_argument("--group-by", choices=GROUP_BY, help="default none: one group")
    p.add_argument("--of-tenant", metavar="TENANT",
                   help="with --tenant admin: one tenant's figures (default: every tenant's)")
    p.add_argument("--reply-timeout", type=float, default=10.0, metavar="S")
    p.add_argument("--json", action="store_true", help="print the raw reply")
    add_amqp_option(p)
    p.set_defaults(func=run_stats, quiet_logs=True)
