"""Call KPIs (``stats.get``, CONTRACT section 3) computed in SQL from the stored rows.

Strategy: three aggregate reads, each a range scan of its own table by its
``(tenant, time)`` index, merged here by group key:

- **calls** by ``initiated_at``, grouped by key and hangup cause: calls, answered,
  failed, cancelled, the calls NER counts as effective, and the causes;
- **CDRs** by ``start_stamp``: ACD, PDD percentiles, minutes, cost, MOS;
- **flash-call orders** by ``created_at``: orders, verified.

The group key is the gateway (null for calls placed without one: inbound calls),
the UTC hour (``2026-12-02T04:00:00+00:00``) or the UTC day (``2026-12-02``) of
the row's own time, or ``"all"``. The PDD percentiles are PostgreSQL's
``percentile_cont`` (linear interpolation). Grouped by hour or day on
PostgreSQL they are ``percentile_cont`` itself: CDRs are stored in time order,
so sorting a range by hour is cheap. Otherwise (one group, gateways, and every
grouping on SQLite, which has no percentile_cont) one hashed pass counts each
key's rows per PDD value, and the two values at the percentile's ranks are read
off the running count: no sort of a month of rows by gateway. On PostgreSQL the
CDRs are read on a second connection beside the calls and orders, and the
statements may use 128 MB for their sorts and hashes. A range with no rows
answers one group of zeros and nulls (``none``) or no group at all (the others).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Select, case, cast, func, or_, select, text
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import String

from callworker.store.db import guarded
from callworker.store.models import CALLS, CDRS, FLASHCALL_ORDERS

__all__ = ["GROUP_BY", "NER_CAUSES", "call_stats", "empty_group", "percentile"]

GROUP_BY = ("none", "gateway", "hour", "day")
# Unanswered calls that ITU-T E.425 counts as effective: the network did its part, the
# called user was busy, did not answer, or rejected the call.
NER_CAUSES = ("USER_BUSY", "NO_ANSWER", "NO_USER_RESPONSE", "CALL_REJECTED")
ALL_KEY = "all"
_FRACTIONS = array([0.5, 0.95])
# PostgreSQL's sorts and hashes of a month of rows stay in memory with this (it is a cap, not an allocation).
_WORK_MEM = "128MB"

Key = str | None


def _key_expr(column: Any, group_by: str, dialect: str, gateway: Any = None) -> ColumnElement[Any] | None:
    """The SQL of a row's group key (None: one group)."""
    if group_by == "none":
        return None
    if group_by == "gateway":
        return gateway  # type: ignore[no-any-return]
    if dialect == "postgresql":
        # Whole UTC hours or days by arithmetic on the instant: no time zone looked up per row.
        return func.date_bin(text(f"interval '1 {group_by}'"), column, text("TIMESTAMPTZ '2000-01-01 00:00:00+00'"))
    # SQLite stores UTC as "YYYY-MM-DD HH:MM:SS.ffffff": the hour and the day are prefixes.
    return func.substr(cast(column, String), 1, 13 if group_by == "hour" else 10)


def _key_text(value: Any, group_by: str) -> Key:
    """The wire form of a key read back from either database."""
    if group_by == "none":
        return ALL_KEY
    if group_by == "gateway":
        return None if value is None else str(value)
    if isinstance(value, datetime):
        # psycopg answers in the session's time zone, whatever it is.
        moment = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:  # SQLite's prefix
        text = str(value)
        moment = datetime.fromisoformat(text + (":00" if group_by == "hour" else ""))
    if group_by == "day":
        return moment.date().isoformat()
    return moment.replace(minute=0, second=0, microsecond=0).isoformat() + "+00:00"


def _window(stmt: Select[Any], tenant_col: Any, time_col: Any, tenant: str | None, from_: datetime,
            to: datetime) -> Select[Any]:
    stmt = stmt.where(time_col >= from_, time_col < to)
    return stmt.where(tenant_col == tenant) if tenant is not None else stmt


def _count(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _calls_rows(conn: Connection, tenant: str | None, from_: datetime, to: datetime, group_by: str) -> list[Any]:
    key = _key_expr(CALLS.c.initiated_at, group_by, conn.dialect.name, CALLS.c.gateway)
    answered = CALLS.c.answered_at.is_not(None)
    columns = [
        CALLS.c.hangup_cause.label("cause"),
        func.count().label("calls"),
        _count(answered).label("answered"),
        _count(CALLS.c.status == "failed").label("failed"),
        _count(CALLS.c.status == "cancelled").label("cancelled"),
        _count(or_(answered, CALLS.c.hangup_cause.in_(NER_CAUSES))).label("effective"),
    ]
    stmt = select(*(([key.label("key")] if key is not None else []) + columns)).select_from(CALLS)
    stmt = _window(stmt, CALLS.c.tenant, CALLS.c.initiated_at, tenant, from_, to)
    stmt = stmt.group_by(*([key] if key is not None else []), CALLS.c.hangup_cause)
    return list(conn.execute(stmt).mappings())


def _cdrs_rows(conn: Connection, tenant: str | None, from_: datetime, to: datetime, group_by: str) -> list[Any]:
    """ACD, minutes, cost, MOS and the PDD percentiles of the CDRs, by key."""
    key = _key_expr(CDRS.c.start_stamp, group_by, conn.dialect.name, CDRS.c.gateway)
    if conn.dialect.name == "postgresql" and group_by in ("hour", "day"):
        return _cdrs_sorted(conn, key, tenant, from_, to)
    return _cdrs_histogram(conn, key, tenant, from_, to)


def _cdrs_sorted(conn: Connection, key: ColumnElement[Any] | None, tenant: str | None, from_: datetime,
                 to: datetime) -> list[dict[str, Any]]:
    """PostgreSQL's percentile_cont over each group (rows come in time order: the sort by key is cheap)."""
    answered = CDRS.c.answer_stamp.is_not(None)
    columns: list[Any] = [
        func.count().label("cdrs"),
        func.avg(case((answered, CDRS.c.billsec))).label("acd_s"),
        func.coalesce(func.sum(CDRS.c.billsec), 0).label("billsec"),
        func.coalesce(func.sum(CDRS.c.cost_cents), 0).label("cost_cents"),
        func.avg(CDRS.c.rtp_audio_in_mos).label("avg_mos"),
        # Both from one sort of the group's PDDs.
        func.percentile_cont(_FRACTIONS).within_group(CDRS.c.pdd_ms).label("pdd_ms"),
    ]
    stmt: Select[Any] = select(*(([key.label("key")] if key is not None else []) + columns)).select_from(CDRS)
    stmt = _window(stmt, CDRS.c.tenant, CDRS.c.start_stamp, tenant, from_, to)
    if key is not None:
        stmt = stmt.group_by(key)
    rows = [dict(row) for row in conn.execute(stmt).mappings() if row["cdrs"]]
    for row in rows:
        row["pdd_ms_p50"], row["pdd_ms_p95"] = row.pop("pdd_ms", None) or (None, None)
    return rows


def _cdrs_histogram(conn: Connection, key: ColumnElement[Any] | None, tenant: str | None, from_: datetime,
                    to: datetime) -> list[dict[str, Any]]:
    """The same figures from one hashed pass: per key and PDD value the sums, then the percentiles
    read off the running count of each key's PDD values (no sort of the rows themselves; any SQL)."""
    answered_billsec = case((CDRS.c.answer_stamp.is_not(None), CDRS.c.billsec))
    keys = [key.label("key")] if key is not None else []
    hist_stmt: Select[Any] = select(
        *keys, CDRS.c.pdd_ms.label("pdd"), func.count().label("n"),
        func.sum(answered_billsec).label("acd_sum"), func.count(answered_billsec).label("acd_n"),
        func.sum(CDRS.c.billsec).label("billsec"), func.sum(CDRS.c.cost_cents).label("cost_cents"),
        func.sum(CDRS.c.rtp_audio_in_mos).label("mos_sum"), func.count(CDRS.c.rtp_audio_in_mos).label("mos_n"),
    ).select_from(CDRS)
    hist_stmt = _window(hist_stmt, CDRS.c.tenant, CDRS.c.start_stamp, tenant, from_, to)
    hist = hist_stmt.group_by(*([key] if key is not None else []), CDRS.c.pdd_ms).cte("hist")
    has_pdd = hist.c.pdd.is_not(None)
    part = [hist.c.key] if key is not None else None
    ranked = select(
        hist,
        func.sum(hist.c.n).filter(has_pdd).over(partition_by=part, order_by=hist.c.pdd, rows=(None, 0)).label("cum"),
        func.sum(hist.c.n).filter(has_pdd).over(partition_by=part).label("total"),
    ).cte("ranked")
    # percentile_cont(f): the values at 0-based ranks floor and ceil of f * (total - 1), interpolated.
    bounds = []
    for name, fraction in (("p50", 0.5), ("p95", 0.95)):
        for end, rank in (("lo", func.floor(fraction * (ranked.c.total - 1))),
                          ("hi", func.ceil(fraction * (ranked.c.total - 1)))):
            bounds.append(func.min(ranked.c.pdd).filter(ranked.c.cum > rank).label(f"{name}_{end}"))
    stmt = select(
        *([ranked.c.key] if key is not None else []), func.sum(ranked.c.n).label("cdrs"),
        func.sum(ranked.c.acd_sum).label("acd_sum"), func.sum(ranked.c.acd_n).label("acd_n"),
        func.coalesce(func.sum(ranked.c.billsec), 0).label("billsec"),
        func.coalesce(func.sum(ranked.c.cost_cents), 0).label("cost_cents"),
        func.sum(ranked.c.mos_sum).label("mos_sum"), func.sum(ranked.c.mos_n).label("mos_n"),
        func.max(ranked.c.total).label("total"), *bounds,
    )
    if key is not None:
        stmt = stmt.group_by(ranked.c.key)
    return [_from_histogram(dict(row)) for row in conn.execute(stmt).mappings() if row["cdrs"]]


def _from_histogram(row: dict[str, Any]) -> dict[str, Any]:
    def mean(total: Any, count: Any) -> float | None:
        return float(total) / int(count) if count else None

    def between(fraction: float, low: Any, high: Any) -> float | None:
        if low is None:
            return None
        position = fraction * (int(row["total"]) - 1)
        return float(low) + (float(high) - float(low)) * (position - math.floor(position))

    return {
        "key": row.get("key"), "cdrs": row["cdrs"], "billsec": row["billsec"], "cost_cents": row["cost_cents"],
        "acd_s": mean(row["acd_sum"], row["acd_n"]), "avg_mos": mean(row["mos_sum"], row["mos_n"]),
        "pdd_ms_p50": between(0.5, row["p50_lo"], row["p50_hi"]),
        "pdd_ms_p95": between(0.95, row["p95_lo"], row["p95_hi"]),
    }


def percentile(ordered: Sequence[float], fraction: float) -> float | None:
    """PostgreSQL's ``percentile_cont``: linear interpolation between the sorted values."""
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _orders_rows(conn: Connection, tenant: str | None, from_: datetime, to: datetime, group_by: str) -> list[Any]:
    orders = FLASHCALL_ORDERS
    key = _key_expr(orders.c.created_at, group_by, conn.dialect.name, orders.c.gateway)
    columns = [func.count().label("orders"), _count(orders.c.status == "verified").label("verified")]
    stmt = select(*(([key.label("key")] if key is not None else []) + columns)).select_from(orders)
    stmt = _window(stmt, orders.c.tenant, orders.c.created_at, tenant, from_, to)
    if key is not None:
        stmt = stmt.group_by(key)
    return [row for row in conn.execute(stmt).mappings() if row["orders"]]


def empty_group(key: Key) -> dict[str, Any]:
    """A group with no call: zeros, and null for what has no value without calls."""
    return {
        "key": key, "calls": 0, "answered": 0, "failed": 0, "cancelled": 0, "asr": None, "ner": None,
        "acd_s": None, "pdd_ms_p50": None, "pdd_ms_p95": None, "minutes": 0.0, "cost_cents": 0,
        "avg_mos": None, "hangup_causes": {}, "flashcall": {"orders": 0, "verified": 0, "conversion": None},
    }


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _rounded(value: Any, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def _merge(group_by: str, calls: Iterable[Any], cdrs: Iterable[Any], orders: Iterable[Any]) -> list[dict[str, Any]]:
    groups: dict[Key, dict[str, Any]] = {}
    effective: dict[Key, int] = defaultdict(int)

    def group(raw: Any) -> dict[str, Any]:
        key = _key_text(raw, group_by)
        if key not in groups:
            groups[key] = empty_group(key)
        return groups[key]

    for row in calls:
        g = group(row.get("key"))
        for name in ("calls", "answered", "failed", "cancelled"):
            g[name] += int(row[name])
        effective[g["key"]] += int(row["effective"])
        if row["cause"] is not None:
            g["hangup_causes"][row["cause"]] = g["hangup_causes"].get(row["cause"], 0) + int(row["calls"])
    for row in cdrs:
        g = group(row.get("key"))
        g["acd_s"] = _rounded(row["acd_s"], 2)
        g["minutes"] = round(int(row["billsec"]) / 60, 2)
        g["cost_cents"] = int(row["cost_cents"])
        g["avg_mos"] = _rounded(row["avg_mos"], 2)
        g["pdd_ms_p50"] = _rounded(row.get("pdd_ms_p50"), 1)
        g["pdd_ms_p95"] = _rounded(row.get("pdd_ms_p95"), 1)
    for row in orders:
        g = group(row.get("key"))
        placed, verified = int(row["orders"]), int(row["verified"])
        g["flashcall"] = {"orders": placed, "verified": verified, "conversion": _ratio(verified, placed)}
    for key, g in groups.items():
        g["asr"] = _ratio(g["answered"], g["calls"])
        g["ner"] = _ratio(effective[key], g["calls"])
        g["hangup_causes"] = dict(sorted(g["hangup_causes"].items(), key=lambda item: (-item[1], item[0])))
    if group_by == "none" and not groups:
        groups[ALL_KEY] = empty_group(ALL_KEY)
    # Time keys sort as text; gateways by name, calls without a gateway last.
    return [groups[key] for key in sorted(groups, key=lambda k: (k is None, k or ""))]


@guarded
def call_stats(engine: Engine, *, tenant: str | None, from_: datetime, to: datetime,
               group_by: str) -> list[dict[str, Any]]:
    """The KPI groups of ``tenant`` (None: every tenant) over ``[from_, to)``, as ``stats.get`` answers them."""
    if group_by not in GROUP_BY:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BY)}")
    if engine.dialect.name != "postgresql":
        with engine.connect() as conn:
            return _merge(group_by, *(read(conn, tenant, from_, to, group_by) for read in _READS))
    # PostgreSQL: the CDRs' query (a sort, on one core) beside the calls' and orders' (on another).
    with ThreadPoolExecutor(max_workers=2) as pool:
        cdrs = pool.submit(_pg_reads, engine, (_cdrs_rows,), tenant, from_, to, group_by)
        calls, orders = _pg_reads(engine, (_calls_rows, _orders_rows), tenant, from_, to, group_by)
        return _merge(group_by, calls, cdrs.result()[0], orders)


_READS = (_calls_rows, _cdrs_rows, _orders_rows)


def _pg_reads(engine: Engine, reads: Sequence[Any], tenant: str | None, from_: datetime, to: datetime,
              group_by: str) -> list[list[Any]]:
    with engine.connect() as conn, conn.begin():
        conn.execute(text(f"SET LOCAL work_mem = '{_WORK_MEM}'"))
        return [read(conn, tenant, from_, to, group_by) for read in reads]
