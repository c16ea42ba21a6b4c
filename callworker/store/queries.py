"""Read-only queries, each in its own short transaction; rows come back as plain dicts.

Tenant-scoped reads always filter by tenant, so another tenant's rows simply do
not exist for the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, ColumnElement, Engine, Select, Table, and_, bindparam, exists, func, select

from callworker.store.db import fetch_all, fetch_one, guarded
from callworker.store.models import CALLS, CDRS, COMMANDS, EVENTS, OUTBOX, TERMINAL_STATUSES

__all__ = [
    "CommandLookup",
    "get_command",
    "lookup_command",
    "get_call",
    "call_id_taken",
    "live_calls_by_id",
    "list_calls",
    "list_cdrs",
    "live_calls",
    "call_events",
    "subject_events",
    "get_cdr",
    "pending_outbox",
]

Row = dict[str, Any]


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


# Read for every command (built once: see _LOOKUP).
_GET_COMMAND = select(COMMANDS).where(
    COMMANDS.c.tenant == bindparam("tenant"), COMMANDS.c.command_id == bindparam("command_id")
)


@guarded
def get_command(engine: Engine, tenant: str, command_id: str) -> Row | None:
    """The command record of (tenant, command_id), or None if never seen."""
    return fetch_one(engine, _GET_COMMAND, {"tenant": tenant, "command_id": command_id})


@dataclass(frozen=True)
class CommandLookup:
    """What the intake needs to know before executing a command, read at once."""

    stored: Row | None  # the command record of (tenant, command_id), if seen before
    call_id_taken: bool  # whether any tenant has a call with the call_id asked about


def _lookup_statement() -> Select[Any]:
    taken = exists().where(CALLS.c.call_id == bindparam("call_id"))
    probe = select(taken.label("call_id_taken_")).subquery("probe")
    matches = and_(COMMANDS.c.tenant == bindparam("tenant"), COMMANDS.c.command_id == bindparam("command_id"))
    return select(probe.c.call_id_taken_, COMMANDS).select_from(probe.outerjoin(COMMANDS, matches))


# Built once: read before every originate, and a statement built anew costs SQLAlchemy
# as much as the round trip (its cache key is computed again each time).
_LOOKUP = _lookup_statement()


@guarded
def lookup_command(engine: Engine, tenant: str, command_id: str, call_id: str | None) -> CommandLookup:
    """The command record and, when ``call_id`` is given, whether that call id is in use.

    One query for both: they are read for every originate before it is dialled.
    """
    if call_id is None:
        return CommandLookup(get_command(engine, tenant, command_id), call_id_taken=False)
    row = fetch_one(engine, _LOOKUP, {"call_id": call_id, "tenant": tenant, "command_id": command_id})
    assert row is not None  # the probe always yields one row
    in_use = bool(row.pop("call_id_taken_"))
    return CommandLookup(row if row["command_id"] is not None else None, call_id_taken=in_use)


@guarded
def get_call(engine: Engine, tenant: str, call_id: str) -> Row | None:
    """The call row, or None if it does not exist for this tenant."""
    return fetch_one(engine, select(CALLS).where(CALLS.c.tenant == tenant, CALLS.c.call_id == call_id))


@guarded
def call_id_taken(engine: Engine, call_id: str) -> bool:
    """Whether any tenant already has a call with this id."""
    stmt = select(CALLS.c.call_id).where(CALLS.c.call_id == call_id)
    return fetch_one(engine, stmt) is not None


@guarded
def live_calls_by_id(engine: Engine, call_ids: Sequence[str]) -> list[Row]:
    """The live calls (any tenant, any node) with these ids."""
    if not call_ids:
        return []
    stmt = select(CALLS).where(CALLS.c.call_id.in_(list(call_ids)), CALLS.c.status.not_in(TERMINAL_STATUSES))
    return fetch_all(engine, stmt)


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
    user_id: str | None = None,
) -> tuple[list[Row], int]:
    """The tenant's calls newest first by initiated_at, and the total count of the filter."""
    where = [CALLS.c.tenant == tenant, *_bounds(CALLS.c.initiated_at, from_, to)]
    if status is not None:
        where.append(CALLS.c.status == status)
    if user_id is not None:
        where.append(CALLS.c.user_id == user_id)
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
    user_id: str | None = None,
) -> tuple[list[Row], int]:
    """The tenant's CDRs newest first by start_stamp, and the total count of the filter."""
    where = [CDRS.c.tenant == tenant, *_bounds(CDRS.c.start_stamp, from_, to)]
    if user_id is not None:
        where.append(CDRS.c.user_id == user_id)
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
    return fetch_all(engine, stmt)


@guarded
def call_events(engine: Engine, call_id: str) -> list[Row]:
    """The stored events of a call (or flash-call order) in seq order."""
    return fetch_all(engine, select(EVENTS).where(EVENTS.c.call_id == call_id).order_by(EVENTS.c.seq))


@guarded
def subject_events(engine: Engine, tenant: str, subject_id: str, from_seq: int, limit: int) -> list[Row]:
    """The tenant's stored events of a call or order from ``from_seq`` on, in seq order."""
    stmt = (
        select(EVENTS.c.seq, EVENTS.c.type, EVENTS.c.body)
        .where(EVENTS.c.call_id == subject_id, EVENTS.c.tenant == tenant, EVENTS.c.seq >= from_seq)
        .order_by(EVENTS.c.seq)
        .limit(limit)
    )
    return fetch_all(engine, stmt)


@guarded
def get_cdr(engine: Engine, tenant: str, call_id: str) -> Row | None:
    """The CDR of a call leg, or None if none is stored for this tenant."""
    return fetch_one(engine, select(CDRS).where(CDRS.c.tenant == tenant, CDRS.c.call_id == call_id))


@guarded
def pending_outbox(engine: Engine, node: str, after_id: int, limit: int) -> list[Row]:
    """Up to `limit` of this node's outbox rows with id > after_id, in id order."""
    stmt = (
        select(OUTBOX)
        .where(OUTBOX.c.node == node, OUTBOX.c.id > after_id)
        .order_by(OUTBOX.c.id)
        .limit(limit)
    )
    return fetch_all(engine, stmt)
