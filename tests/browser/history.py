"""Calls of the last quarter hour, as the database would hold them, for the page to draw and count.

The simulator can only place calls now; the 15-minute chart and the last hour's KPIs
need calls that started and ended minutes ago. These rows are what the worker writes
for such calls (a call row and its CDR), spread over the last 14 minutes.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert

from callworker.store.models import CALLS, CDRS
from tests.component.test_store import call_row, cdr_row

__all__ = ["seed_calls"]

# (status, hangup cause, q850, weight)
_OUTCOMES = (
    ("completed", "NORMAL_CLEARING", 16, 70),
    ("failed", "USER_BUSY", 17, 12),
    ("failed", "NO_ANSWER", 19, 8),
    ("failed", "UNALLOCATED_NUMBER", 1, 3),
    ("cancelled", "ORIGINATOR_CANCEL", 487, 7),
)
GATEWAYS = ("carrier-a", "carrier-b")


def _has(table: Any, column: str) -> bool:
    return column in table.c


def seed_calls(engine: Engine, tenant: str, now: datetime, count: int = 60) -> None:
    """``count`` ended calls of ``tenant`` over the last 14 minutes, each with its CDR."""
    rng = random.Random(15)
    calls, cdrs = [], []
    for n in range(count):
        status, cause, q850, _weight = rng.choices(_OUTCOMES, weights=[o[3] for o in _OUTCOMES])[0]
        start = now - timedelta(seconds=840 * (count - n) / count + rng.uniform(0, 5))
        pdd = rng.randint(600, 2600)
        answered = start + timedelta(milliseconds=pdd + rng.randint(1500, 6000)) if status == "completed" else None
        billsec = rng.randint(15, 150) if answered else 0
        end = (answered + timedelta(seconds=billsec)) if answered else start + timedelta(seconds=rng.randint(3, 20))
        end = min(end, now - timedelta(seconds=1))
        call_id = str(uuid.uuid4())
        number = f"+1555{rng.randint(1000000, 9999999)}"
        gateway = GATEWAYS[0] if rng.random() < 0.65 else GATEWAYS[1]
        extra = {"gateway": gateway} if _has(CALLS, "gateway") else {}
        calls.append(call_row(call_id, tenant=tenant, status=status, destination_number=number,
                              initiated_at=start, answered_at=answered, ended_at=end, hangup_cause=cause,
                              last_seq=5, updated_at=end, **extra))
        mos = round(min(4.5, max(1.5, rng.gauss(4.0, 0.45))), 2) if answered else None
        extra = {"gateway": gateway} if _has(CDRS, "gateway") else {}
        cdrs.append(cdr_row(call_id, tenant=tenant, destination_number=number, start_stamp=start,
                            answer_stamp=answered, end_stamp=end, duration=int((end - start).total_seconds()),
                            billsec=billsec, billmsec=billsec * 1000, hangup_cause=cause, hangup_cause_q850=q850,
                            pdd_ms=pdd, rtp_audio_in_mos=mos, **extra))
    with engine.begin() as conn:
        conn.execute(insert(CALLS), calls)
        conn.execute(insert(CDRS), cdrs)
