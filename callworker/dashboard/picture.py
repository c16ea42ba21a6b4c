"""The picture a page starts from: the calls up now and the last 15 minutes, read from the database."""

from __future__ import annotations

from bisect import bisect_right
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from callworker.contract import to_iso, utcnow
from callworker.contract.events import call_snapshot
from callworker.dashboard.auth import Viewer
from callworker.store.dashboard import call_times, calls_up

__all__ = ["BUCKET_S", "WINDOW_S", "history", "snapshot"]

BUCKET_S = 5
WINDOW_S = 15 * 60
# Calls that started this long before the window and ended inside it still count as concurrent.
_LONGEST_CALL = timedelta(hours=2)


def history(times: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """Calls started per bucket and calls up at each bucket's end, over the last 15 minutes."""
    count = WINDOW_S // BUCKET_S
    start = now - timedelta(seconds=WINDOW_S)
    initiated = [0] * count
    begins = sorted(row["initiated_at"] for row in times if row["initiated_at"] is not None)
    ends = sorted(row["ended_at"] for row in times if row["initiated_at"] is not None and row["ended_at"] is not None)
    for began in begins:
        offset = (began - start).total_seconds()
        if 0 <= offset < WINDOW_S:
            initiated[int(offset // BUCKET_S)] += 1
    concurrent = []
    for i in range(count):
        end = start + timedelta(seconds=BUCKET_S * (i + 1))
        concurrent.append(bisect_right(begins, end) - bisect_right(ends, end))
    return {"start": to_iso(start), "bucket_s": BUCKET_S, "initiated": initiated, "concurrent": concurrent}


def snapshot(engine: Engine, viewer: Viewer, tenants: list[str]) -> dict[str, Any]:
    """What the page shows before any event: the calls up now and the 15-minute history."""
    now = utcnow()
    calls = []
    for row in calls_up(engine, viewer.tenant):
        call = call_snapshot(row, now=now)
        call.update(tenant=row["tenant"], seq=row["last_seq"])
        calls.append(call)
    times = call_times(engine, viewer.tenant, now - timedelta(seconds=WINDOW_S) - _LONGEST_CALL)
    return {
        "now": to_iso(now),
        "viewer": {"tenant": viewer.tenant, "admin": viewer.admin, "tenants": tenants if viewer.admin else []},
        "calls": calls,
        "history": history(times, now),
    }
