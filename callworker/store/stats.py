"""Call KPIs (``stats.get``, CONTRACT section 3) computed in SQL from the stored rows.

Strategy: three aggregate reads, each a range scan on its own ``(tenant, time)``
index, merged here by group key:

- **calls** by ``initiated_at``, grouped by key and hangup cause: calls, answered,
  failed, cancelled, the calls NER counts as effective, and the causes;
- **CDRs** by ``start_stamp``: ACD, PDD percentiles, minutes, cost, MOS;
- **flash-call orders** by ``created_at``: orders, verified.

The group key is the gateway (null for calls placed without one: inbound calls),
the UTC hour (``2026-12-02T04:00:00+00:00``) or the UTC day (``2026-12-02``) of
the row's own time, or ``"all"``. PostgreSQL computes the PDD percentiles with
``percentile_cont``; SQLite, which has none, gets the values and computes the same
interpolation here. A range with no rows answers one group of zeros and nulls
(``none``) or no group at all (the others).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Select, case, cast, func, literal_column, or_, select, text
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
        moment = value.replace(tzinfo=None)
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
    pg = conn.dialect.name == "postgresql"
    key = _key_expr(CDRS.c.start_stamp, group_by, conn.dialect.name, CDRS.c.gateway)
    answered = CDRS.c.answer_stamp.is_not(None)
    columns: list[Any] = [
        func.count().label("cdrs"),
        func.avg(case((answered, CDRS.c.billsec))).label("acd_s"),
        func.coalesce(func.sum(CDRS.c.billsec), 0).label("billsec"),
        func.coalesce(func.sum(CDRS.c.cost_cents), 0).label("cost_cents"),
        func.avg(CDRS.c.rtp_audio_in_mos).label("avg_mos"),
    ]
    if pg:
        # Both from one sort of the group's PDDs.
        columns.append(func.percentile_cont(_FRACTIONS).within_group(CDRS.c.pdd_ms).label("pdd_ms"))
    stmt: Select[Any] = select(*(([key.label("key")] if key is not None else []) + columns)).select_from(CDRS)
    stmt = _window(stmt, CDRS.c.tenant, CDRS.c.start_stamp, tenant, from_, to)
    if key is not None:
        stmt = stmt.group_by(key)
    # An aggregate without GROUP BY answers one row even for no CDR.
    rows = [dict(row) for row in conn.execute(stmt).mappings() if row["cdrs"]]
    for row in rows:
        row["pdd_ms_p50"], row["pdd_ms_p95"] = row.pop("pdd_ms", None) or (None, None)
    if not pg:
        _sqlite_percentiles(conn, rows, key, tenant, from_, to)
    return rows


def _sqlite_percentiles(conn: Connection, rows: list[dict[str, Any]], key: ColumnElement[Any] | None,
                        tenant: str | None, from_: datetime, to: datetime) -> None:
    """percentile_cont's answer, computed over the PDD values read back (SQLite)."""
    key_col = key.label("key") if key is not None else literal_column("NULL").label("key")
    stmt: Select[Any] = select(key_col, CDRS.c.pdd_ms).select_from(CDRS).where(CDRS.c.pdd_ms.is_not(None))
    stmt = _window(stmt, CDRS.c.tenant, CDRS.c.start_stamp, tenant, from_, to)
    values: dict[Any, list[float]] = defaultdict(list)
    for raw_key, pdd in conn.execute(stmt):
        values[raw_key].append(float(pdd))
    for group in rows:  # every PDD is of a CDR counted in ``rows``
        pdds = sorted(values.get(group.get("key"), ()))
        group["pdd_ms_p50"], group["pdd_ms_p95"] = percentile(pdds, 0.5), percentile(pdds, 0.95)


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
