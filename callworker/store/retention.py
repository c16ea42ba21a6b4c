"""Retention: rows older than the configured age are deleted, a small batch at a time.

Strategy: a background greenlet sweeps every ``interval_s``. Each step deletes
one batch in its own short transaction: an ended call with its events and CDR
(found by ``initiated_at``) and its recordings' rows (the WAV files are
FreeSWITCH's, on its machine: docs/media.md), a closed flash-call order with its events (by
``created_at``), command records (by ``created_at``, after 7 days: their ids
stay taken that long, far past any command's maximum age), the limits' counts
of tenants and users idle for two days with no call up, and erasures nodes have
long read. Between two batches it pauses, so the journal's writes (and on
SQLite the one connection) are never held for more than one small batch. A call
not yet ended is never deleted, however old. Every node sweeps; on PostgreSQL
each skips the rows another's sweep holds (``SKIP LOCKED``) instead of waiting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import gevent
from sqlalchemy import ColumnElement, Engine, Table, and_, delete, select, tuple_

from callworker.errors import StoreUnavailable
from callworker.store.db import guarded
from callworker.store.models import (
    CALLS,
    CDRS,
    COMMANDS,
    ERASURES,
    EVENTS,
    FLASHCALL_ORDERS,
    RECORDINGS,
    TERMINAL_STATUSES,
    USAGE,
    utcnow,
)

__all__ = ["Retention", "Sweeper", "sweep"]

log = logging.getLogger("callworker.retention")

# Counts idle this long, with no call up, hold nothing a limit still needs (a day, a minute).
_USAGE_IDLE = timedelta(days=2)
# Every node reads a new erasure within seconds; a day is ample.
_ERASURES_KEPT = timedelta(days=1)


@dataclass(frozen=True)
class Retention:
    days: int
    command_days: int = 7
    batch: int = 500
    pause_s: float = 0.05  # between two batches: the journal's writes go first


@guarded
def sweep(engine: Engine, retention: Retention, now: datetime | None = None) -> dict[str, int]:
    """Delete everything past its age, batch by batch; how many rows of each kind went."""
    now = now or utcnow()
    cutoff = now - timedelta(days=retention.days)
    deleted = {"calls": 0, "flashcall_orders": 0, "commands": 0, "usage": 0, "erasures": 0}

    def batches(name: str, step: Callable[[int], int]) -> None:
        while True:
            count = step(retention.batch)
            deleted[name] += count
            if count < retention.batch:
                return
            gevent.sleep(retention.pause_s)  # let the journal in between batches

    batches("calls", lambda n: _delete_calls(engine, cutoff, n))
    batches("flashcall_orders", lambda n: _delete_orders(engine, cutoff, n))
    command_cutoff = now - timedelta(days=retention.command_days)
    batches("commands", lambda n: _delete_keys(engine, COMMANDS, COMMANDS.c.created_at < command_cutoff, n))
    idle = (USAGE.c.updated_at < now - _USAGE_IDLE, USAGE.c.live <= 0)
    batches("usage", lambda n: _delete_keys(engine, USAGE, and_(*idle), n))
    batches("erasures", lambda n: _delete_keys(engine, ERASURES, ERASURES.c.created_at < now - _ERASURES_KEPT, n))
    return deleted


def _delete_calls(engine: Engine, cutoff: datetime, limit: int) -> int:
    with engine.begin() as conn:
        ids = list(conn.execute(
            select(CALLS.c.call_id)
            .where(CALLS.c.initiated_at < cutoff, CALLS.c.status.in_(TERMINAL_STATUSES))
            .limit(limit)
            .with_for_update(skip_locked=True)  # another node's sweep has those: take others
        ).scalars())
        if ids:
            conn.execute(delete(EVENTS).where(EVENTS.c.call_id.in_(ids)))
            conn.execute(delete(CDRS).where(CDRS.c.call_id.in_(ids)))
            conn.execute(delete(RECORDINGS).where(RECORDINGS.c.call_id.in_(ids)))
            conn.execute(delete(CALLS).where(CALLS.c.call_id.in_(ids)))
    return len(ids)


def _delete_orders(engine: Engine, cutoff: datetime, limit: int) -> int:
    with engine.begin() as conn:
        ids = list(conn.execute(
            select(FLASHCALL_ORDERS.c.order_id)
            .where(FLASHCALL_ORDERS.c.created_at < cutoff, FLASHCALL_ORDERS.c.status != "open")
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).scalars())
        if ids:
            conn.execute(delete(EVENTS).where(EVENTS.c.call_id.in_(ids)))  # an order's events bear its id
            conn.execute(delete(FLASHCALL_ORDERS).where(FLASHCALL_ORDERS.c.order_id.in_(ids)))
    return len(ids)


def _delete_keys(engine: Engine, table: Table, where: ColumnElement[bool], limit: int) -> int:
    """Delete up to ``limit`` rows of ``table`` matching ``where``, by primary key."""
    columns = list(table.primary_key.columns)
    with engine.begin() as conn:
        stmt = select(*columns).where(where).limit(limit).with_for_update(skip_locked=True)
        rows = [tuple(row) for row in conn.execute(stmt)]
        if rows:
            conn.execute(delete(table).where(tuple_(*columns).in_(rows)))
    return len(rows)


class Sweeper:
    """Runs ``sweep`` every ``interval_s``, the first a while after start."""

    def __init__(self, engine: Engine, retention: Retention, *, interval_s: float = 600.0,
                 first_after_s: float = 60.0) -> None:
        self._engine = engine
        self._retention = retention
        self._interval_s = interval_s
        self._first_after_s = first_after_s
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(timeout=1)
            self._greenlet = None

    def _run(self) -> None:
        gevent.sleep(self._first_after_s)  # a period, not a wait for something to happen
        while True:
            try:
                deleted = sweep(self._engine, self._retention)
                if any(deleted.values()):
                    log.info("retention deleted %s", ", ".join(f"{n} {k}" for k, n in deleted.items() if n))
            except StoreUnavailable:
                log.warning("retention could not reach the database; will try again")
            except Exception:
                log.exception("retention failed; will try again")
            gevent.sleep(self._interval_s)
