"""What the dashboard reads from the database: the calls up now, the recent calls'
start and end times (for the 15-minute chart) and the MOS distribution.

Every read filters by tenant unless the caller is the operator (``tenant=None``),
so another tenant's rows do not exist for a tenant's page.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, case, func, or_, select

from callworker.store.db import fetch_all, guarded
from callworker.store.models import CALLS, CDRS, TERMINAL_STATUSES

__all__ = ["MOS_BUCKETS", "calls_up", "call_times", "mos_distribution"]

Row = dict[str, Any]

# (label, lower bound inclusive, upper bound exclusive): the usual MOS bands.
MOS_BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("<2.6", 0.0, 2.6),
    ("2.6-3.1", 2.6, 3.1),
    ("3.1-3.6", 3.1, 3.6),
    ("3.6-4.0", 3.6, 4.0),
    ("4.0-4.3", 4.0, 4.3),
    (">=4.3", 4.3, 99.0),
)


def _tenant(column: Any, tenant: str | None) -> list[ColumnElement[bool]]:
    return [] if tenant is None else [column == tenant]


@guarded
def calls_up(engine: Engine, tenant: str | None, limit: int = 500) -> list[Row]:
    """Calls not yet ended, oldest first (any node): the rows ``call.list`` would show live."""
    stmt = (
        select(CALLS)
        .where(*_tenant(CALLS.c.tenant, tenant), CALLS.c.status.not_in(TERMINAL_STATUSES))
        .order_by(CALLS.c.initiated_at, CALLS.c.call_id)
        .limit(limit)
    )
    return fetch_all(engine, stmt)


@guarded
def call_times(engine: Engine, tenant: str | None, since: datetime, limit: int = 50_000) -> list[Row]:
    """``initiated_at`` and ``ended_at`` of calls started since ``since`` or still up."""
    live = CALLS.c.status.not_in(TERMINAL_STATUSES)
    stmt = (
        select(CALLS.c.initiated_at, CALLS.c.ended_at)
        .where(*_tenant(CALLS.c.tenant, tenant), or_(CALLS.c.initiated_at >= since, live))
        .order_by(CALLS.c.initiated_at.desc())
        .limit(limit)
    )
    return fetch_all(engine, stmt)


@guarded
def mos_distribution(engine: Engine, tenant: str | None, from_: datetime, to: datetime) -> list[Row]:
    """How many CDRs started in ``[from_, to)`` fall in each MOS band (CDRs without a MOS left out)."""
    mos = CDRS.c.rtp_audio_in_mos
    band = case(
        *[(and_(mos >= low, mos < high), label) for label, low, high in MOS_BUCKETS],
        else_=None,
    ).label("band")
    stmt = (
        select(band, func.count().label("calls"))
        .where(*_tenant(CDRS.c.tenant, tenant), CDRS.c.start_stamp >= from_, CDRS.c.start_stamp < to,
               mos.is_not(None))
        .group_by(band)
    )
    counts = {row["band"]: int(row["calls"]) for row in fetch_all(engine, stmt) if row["band"] is not None}
    return [{"band": label, "calls": counts.get(label, 0)} for label, _low, _high in MOS_BUCKETS]
