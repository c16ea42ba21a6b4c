"""Read-only queries, each in its own short transaction; rows come back as plain dicts.

Tenant-scoped reads always filter by tenant, so another tenant's rows simply do
not exist for the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Column, ColumnElement, Engine, Select, Table, func, select

from callworker.store.db import guarded
from callworker.store.models import CALLS, CDRS, COMMANDS, EVENTS, OUTBOX, TERMINAL_STATUSES

__all__ = [
    "get_command",
    "get_call",
    "call_id_taken",
    "live_calls_by_id",
    "list_calls",
    "list_cdrs",
    "live_calls",
    "call_events",
    "get_cdr",
    "pending_outbox",
]

Row = dict[str, Any]


def _one(engine: Engine, stmt: Select[Any]) -> Row | None:
    with engine.connect() as conn:
        row = conn.execute(stmt).mappings().first()
    return dict(row) if row is not None else None


def _all(engine: Engine, stmt: Select[Any]) -> list[Row]:
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(stmt).mappings()]


def _page(
    engine: Engine,
    table: Table,
    where: Sequence[ColumnElement[bool]],
    order: Sequence[Any],
    limit: int,
    offset: int,
) -> tuple[list[Row], int]:
    """One page of `table` under `where`, and how many rows match in all."""
    rows_stmt = select(table).where(*where).order_by(*order).limit(limit).offset(offset)
    count_stmt = select(func.count()).select_from(table).where(*where)
    # One transaction, so the page and the count agree.
    with engine.begin() as conn:
        rows = [dict(row) for row in conn.execute(rows_stmt).mappings()]
        total = conn.execute(count_stmt).scalar_one()
    return rows, int(total)


def _bounds(
    column: Column[Any], from_: datetime | None, to: datetime | None
) -> list[ColumnElement[bool]]:
    """from inclusive, to exclusive."""
    where: list[ColumnElement[bool]] = []
    if from_ is not None:
        where.append(column >= from_)
    if to is not None:
        where.append(column < to)
    return where


@guarded
def get_command(engine: Engine, tenant: str, command_id: str) -> Row | None:
    """The command record of (tenant, command_id), or None if never seen."""
    stmt = select(COMMANDS).where(COMMANDS.c.tenant == tenant, COMMANDS.c.command_id == command_id)
    return _one(engine, stmt)


@guarded
def get_call(engine: Engine, tenant: str, call_id: str) -> Row | None:
    """The call row, or None if it does not exist for this tenant."""
    return _one(engine, select(CALLS).where(CALLS.c.tenant == tenant, CALLS.c.call_id == call_id))


@guarded
def call_id_taken(engine: Engine, call_id: str) -> bool:
    """Whether any tenant already has a call with this id."""
    stmt = select(CALLS.c.call_id).where(CALLS.c.call_id == call_id)
    return _one(engine, stmt) is not None


@guarded
def live_calls_by_id(engine: Engine, call_ids: Sequence[str]) -> list[Row]:
    """The live calls (any tenant, any node) with these ids."""
    if not call_ids:
        return []
    stmt = select(CALLS).where(CALLS.c.call_id.in_(list(call_ids)), CALLS.c.status.not_in(TERMINAL_STATUSES))
    return _all(engine, stmt)


@guarded
def list_calls(
    engine: Engine,
    tenant: str,
    *,
    from_: datetime | None,
    to: datetime | None,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Row], int]:
    """The tenant's calls newest first by initiated_at, and the total count of the filter."""
    where = [CALLS.c.tenant == tenant, *_bounds(CALLS.c.initiated_at, from_, to)]
    if status is not None:
        where.append(CALLS.c.status == status)
    order = (CALLS.c.initiated_at.desc().nulls_last(), CALLS.c.call_id.desc())
    return _page(engine, CALLS, where, order, limit, offset)


@guarded
def list_cdrs(
    engine: Engine,
    tenant: str,
    *,
    from_: datetime | None,
    to: datetime | None,
    limit: int,
    offset: int,
) -> tuple[list[Row], int]:
    """The tenant's CDRs newest first by start_stamp, and the total count of the filter."""
    where = [CDRS.c.tenant == tenant, *_bounds(CDRS.c.start_stamp, from_, to)]
    order = (CDRS.c.start_stamp.desc().nulls_last(), CDRS.c.call_id.desc())
    return _page(engine, CDRS, where, order, limit, offset)


@guarded
def live_calls(engine: Engine, node: str) -> list[Row]:
    """Calls held by `node` that have not ended, oldest first."""
    stmt = (
        select(CALLS)
        .where(CALLS.c.node == node, CALLS.c.status.not_in(TERMINAL_STATUSES))
        .order_by(CALLS.c.initiated_at, CALLS.c.call_id)
    )
    return _all(engine, stmt)


@guarded
def call_events(engine: Engine, call_id: str) -> list[Row]:
    """The stored events of a call (or flash-call order) in seq order."""
    return _all(engine, select(EVENTS).where(EVENTS.c.call_id == call_id).order_by(EVENTS.c.seq))


@guarded
def get_cdr(engine: Engine, tenant: str, call_id: str) -> Row | None:
    """The CDR of a call leg, or None if none is stored for this tenant."""
    return _one(engine, select(CDRS).where(CDRS.c.tenant == tenant, CDRS.c.call_id == call_id))


@guarded
def pending_outbox(engine: Engine, node: str, after_id: int, limit: int) -> list[Row]:
    """Up to `limit` of this node's outbox rows with id > after_id, in id order."""
    stmt = (
        select(OUTBOX)
        .where(OUTBOX.c.node == node, OUTBOX.c.id > after_id)
        .order_by(OUTBOX.c.id)
        .limit(limit)
    )
    return _all(engine, stmt)
