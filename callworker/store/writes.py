"""Writes: one transaction per batch (calls, flash-call orders, commands, events, CDRs,
outbox), and outbox cleanup.

Strategy: this is the hot path of the worker, so every table is written with one
Core statement executed over all of its rows (the driver's executemany), never row
by row through the ORM. What a batch is, and how each table's rows meet the rows
already stored, is ``batch.py``'s, for both writers. Upserts use the dialect's own
INSERT .. ON CONFLICT, which SQLite and PostgreSQL spell the same way. Rows of a
table are sent in runs of equal key sets, in the order given, so a row that leaves
a column out does not overwrite it on conflict.

On PostgreSQL a batch goes as one statement instead (`bulk.py`: one round trip,
and PostgreSQL does the per-row work): that is what the journal's commits and the
relay's deletes wait for, so it sets how fast a command is answered.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Insert, Table, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from callworker.store import bulk
from callworker.store.batch import KEEP_ON_CONFLICT, RULES, Batch, TableRule
from callworker.store.db import autocommit, guarded
from callworker.store.models import EVENTS, OUTBOX, utcnow
from callworker.store.usage import fold, write_usage_sqlite

__all__ = ["Batch", "write_batch", "batch_stored", "delete_outbox"]

# Flash-call orders and recordings are not part of PostgreSQL's single statement: they are
# written beside it, in the same transaction.
_BESIDE = tuple(rule for rule in RULES if rule.name in ("orders", "recordings"))

# SQLite limits bound parameters per statement; PostgreSQL is fine with these too.
_DELETE_CHUNK = 500


def _runs(rows: Sequence[dict[str, Any]]) -> Iterator[tuple[frozenset[str], list[dict[str, Any]]]]:
    """Consecutive rows sharing one key set (executemany needs equal keys)."""
    keys: frozenset[str] | None = None
    run: list[dict[str, Any]] = []
    for row in rows:
        row_keys = frozenset(row)
        if row_keys != keys and run:
            assert keys is not None
            yield keys, run
            run = []
        keys = row_keys
        run.append(row)
    if run:
        assert keys is not None
        yield keys, run


def _dialect_insert(dialect: str, table: Table) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"no upsert for dialect {dialect}")


@functools.lru_cache(maxsize=256)
def _upsert(dialect: str, table: Table, keys: frozenset[str]) -> Insert:
    """INSERT .. ON CONFLICT (pk) DO UPDATE of the given columns (and updated_at)."""
    stmt = _dialect_insert(dialect, table)
    pk = [col.name for col in table.primary_key.columns]
    updated = set(keys)
    if "updated_at" in table.c:
        updated.add("updated_at")  # its insert default holds "now"
    updated -= set(pk) | KEEP_ON_CONFLICT
    set_ = {name: stmt.excluded[name] for name in sorted(updated)}
    if not set_:
        return stmt.on_conflict_do_nothing(index_elements=pk)  # type: ignore[no-any-return]
    return stmt.on_conflict_do_update(index_elements=pk, set_=set_)  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=16)
def _insert_ignore(dialect: str, table: Table) -> Insert:
    stmt = _dialect_insert(dialect, table)
    pk = [col.name for col in table.primary_key.columns]
    return stmt.on_conflict_do_nothing(index_elements=pk)  # type: ignore[no-any-return]


def _write_table(conn: Connection, rule: TableRule, rows: Sequence[dict[str, Any]], fresh: bool) -> None:
    """One table's rows by its rule: plain inserts, upserts, or inserts that leave stored rows be."""
    dialect = conn.dialect.name
    for keys, run in _runs(rule.rows_to_write(rows, fresh)):
        if rule.refuses_taken(fresh):
            stmt: Insert = insert(rule.table)  # a key already stored raises IntegrityError
        elif rule.upsert:
            stmt = _upsert(dialect, rule.table, keys)
        else:
            stmt = _insert_ignore(dialect, rule.table)
        conn.execute(stmt, run)


def _upsert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    dialect = conn.dialect.name
    for keys, run in _runs(rows):
        conn.execute(_upsert(dialect, table, keys), run)


def _insert_outbox(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[int]:
    ids: list[int] = []
    # sort_by_parameter_order: the ids come back in the order the rows were given.
    stmt = insert(OUTBOX).returning(OUTBOX.c.id, sort_by_parameter_order=True)
    for _keys, run in _runs(rows):
        ids.extend(conn.execute(stmt, run).scalars().all())
    return ids


def _bulk_tables(batch: Batch) -> dict[str, list[dict[str, Any]]] | None:
    """The batch as `bulk.write_rows` takes it, or None where it cannot."""
    tables = {
        "calls": batch.calls,
        "commands": batch.commands,
        "events": batch.events,
        "cdrs": batch.cdrs,
        "usage": fold(batch.usage, utcnow()),
        "outbox": batch.outbox,
    }
    return tables if all(bulk.uniform(rows) for rows in tables.values()) else None


@guarded
def write_batch(engine: Engine, batch: Batch, *, fresh: bool = False) -> list[int]:
    """Write `batch` in one transaction; return the new outbox ids in the order given.

    Calls are upserted by call_id, flash-call orders by order_id (several rows of
    one order are folded into one), commands by (tenant, command_id); events are
    inserted, an event_id already stored is left as it was (another event with a
    taken (call_id, seq) raises IntegrityError); a CDR already stored for its
    call_id is left as it was. So the same batch written again, after a commit
    whose outcome the connection lost, stores nothing twice but its outbox rows:
    ask ``batch_stored`` before writing a batch again.

    ``fresh``: the batch opens new calls and commands only. They are inserted, not
    upserted, so one whose call_id or (tenant, command_id) is stored already, or
    being stored by another transaction, refuses the whole batch with
    IntegrityError: the write itself is the idempotency check.

    ``usage`` deltas are added to the limits' counts; one taken over its cap
    refuses the whole batch with IntegrityError (``usage.is_over_limit``).
    """
    if batch.is_empty():
        return []
    tables = _bulk_tables(batch) if engine.dialect.name == "postgresql" else None
    if tables is not None:
        beside = [(rule, getattr(batch, rule.name)) for rule in _BESIDE if getattr(batch, rule.name)]
        if not beside:
            with autocommit(engine).connect() as conn:
                return bulk.write_rows(conn, tables, fresh=fresh)
        with engine.begin() as conn:
            for rule, rows in beside:
                _write_table(conn, rule, rows, fresh)
            return bulk.write_rows(conn, tables, fresh=fresh)
    with engine.begin() as conn:
        for rule in RULES:
            rows = getattr(batch, rule.name)
            if rows:
                _write_table(conn, rule, rows, fresh)
        # After the writes above: the transaction holds SQLite's write lock.
        write_usage_sqlite(conn, batch.usage, utcnow(), _upsert_rows)
        return _insert_outbox(conn, batch.outbox) if batch.outbox else []


@guarded
def batch_stored(engine: Engine, batch: Batch) -> bool:
    """Whether an earlier write of ``batch``, whose commit went unanswered, committed.

    Asked only of a batch with outbox rows: the rest of a batch can be written
    again without storing anything twice, its outbox rows cannot. Its first event
    tells (event ids are unique, and events stay stored after their rows are
    published and deleted); a batch without events is told by its first outbox
    row's ``node``, ``created_at`` (the batch's time, to the microsecond) and
    routing key.
    """
    if not batch.outbox:
        return False
    first = batch.outbox[0]
    if batch.events:
        probe = select(EVENTS.c.event_id).where(EVENTS.c.event_id == batch.events[0]["event_id"])
    elif first.get("created_at") is not None:
        probe = (
            select(OUTBOX.c.id)
            .where(
                OUTBOX.c.node == first["node"],
                OUTBOX.c.created_at == first["created_at"],
                OUTBOX.c.routing_key == first["routing_key"],
            )
            .limit(1)
        )
    else:
        return False
    with autocommit(engine).connect() as conn:
        return conn.execute(probe).first() is not None


@guarded
def delete_outbox(engine: Engine, ids: Sequence[int]) -> None:
    """Delete the outbox rows with these ids (those the broker confirmed)."""
    if not ids:
        return
    ids = list(ids)
    if engine.dialect.name == "postgresql":
        with autocommit(engine).connect() as conn:
            conn.exec_driver_sql("DELETE FROM outbox WHERE id = ANY(%(ids)s::bigint[])", {"ids": ids})
        return
    with engine.begin() as conn:
        for start in range(0, len(ids), _DELETE_CHUNK):
            chunk = ids[start : start + _DELETE_CHUNK]
            conn.execute(delete(OUTBOX).where(OUTBOX.c.id.in_(chunk)))
