"""PostgreSQL: a whole batch in one statement, and one round trip.

Strategy: every table of a batch is written by one data-modifying common table
expression whose rows come from ``json_populate_recordset`` over one JSON
document per table, and the outbox rows are inserted by the statement's main
query, which returns their ids. One document per table rather than one array
per column: psycopg dumps an array element by element in Python, which cost the
journal about a millisecond per batch, while the JSON encoder is C. PostgreSQL
reads each value with its column's own input function, so a value too long is
refused as an insert would refuse it, never cut short.
One statement is one transaction on its own (the connection is in autocommit),
so a batch costs a single round trip instead of BEGIN, one per table, and
COMMIT; the statement's text depends only on which tables the batch touches, so
psycopg prepares it once on each connection.

Each table follows its rule in `batch.py`, as on the per-table path of
`writes.py`: calls and commands are upserted (created_at kept, rows of one key
folded first), events and CDRs already stored are left as they were, another
event with a taken (call_id, seq) fails the whole batch.

A batch that only opens new calls and commands is written ``fresh``: their rows
are plain inserts, so a call id or command id the database holds already (or
that another transaction is inserting at the same moment) refuses the whole
statement with a unique violation, and nothing of it is stored.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Column, Connection, DateTime, Float, LargeBinary, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import StatementError
from sqlalchemy.types import TypeDecorator, TypeEngine

from callworker.store.batch import KEEP_ON_CONFLICT, RULES, TableRule
from callworker.store.models import OUTBOX, USAGE
from callworker.store.usage import WINDOW_S

__all__ = ["write_rows", "uniform"]



def _to_json(column_type: TypeEngine[Any]) -> Callable[[Any], Any] | None:
    """How a column's (bound) values are spelled in the JSON document, if not as they are.

    Times as ISO 8601 with their offset, bytes in bytea's hex input form, floats
    that JSON cannot hold in float8's own words for them; JSON columns' values are
    nested as they are.
    """
    if isinstance(column_type, TypeDecorator):
        column_type = column_type.impl_instance
    if isinstance(column_type, DateTime):
        return lambda value: None if value is None else value.isoformat()
    if isinstance(column_type, LargeBinary):
        return lambda value: None if value is None else "\\x" + bytes(value).hex()
    if isinstance(column_type, Float):
        return _float_to_json
    return None


def _float_to_json(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _binder(table: Table, name: str) -> Callable[[Any, Dialect], Any] | None:
    """What checks or converts a value before it is written (a UTC time, say)."""
    column_type = table.c[name].type
    return column_type.process_bind_param if isinstance(column_type, TypeDecorator) else None


class _TableWrite:
    """How one table's rows are written: its columns, their arrays, its conflict rule.

    Columns the rows leave out but the model gives a default (updated_at, on_hold,
    ...) are inserted with it, as SQLAlchemy's own insert would; an upsert sets
    only the columns the rows name, and updated_at.
    """

    def __init__(self, table: Table, given: Sequence[str], *, upsert: bool, refuse_taken: bool = False) -> None:
        self.table = table
        self.given = tuple(given)
        self.defaulted = tuple(
            col.name for col in table.columns if col.name not in self.given and _python_default(col) is not None
        )
        self.columns = self.given + self.defaulted
        self.key = tuple(col.name for col in table.primary_key.columns)
        self._converters = [
            (name, _binder(table, name), _to_json(table.c[name].type)) for name in self.columns
        ]
        updated = [name for name in self.given if name not in self.key and name not in KEEP_ON_CONFLICT]
        if "updated_at" in self.defaulted:
            updated.append("updated_at")  # its default holds "now"
        self._updated = tuple(updated) if upsert else ()
        # No ON CONFLICT at all: a taken key fails the statement.
        self._refuse_taken = refuse_taken

    def source(self, prefix: str, *, ordinality: bool = False) -> str:
        """The rows of this table's JSON document, typed by the table itself."""
        rows = f"json_populate_recordset(NULL::{self.table.name}, %({prefix})s::json)"
        return f"{rows} WITH ORDINALITY AS rows_" if ordinality else f"{rows} AS rows_"

    def insert(self, prefix: str) -> str:
        names = ", ".join(self.columns)
        # Identifiers come from the models only; every value travels as a parameter.
        sql = f"INSERT INTO {self.table.name} ({names}) SELECT {names} FROM {self.source(prefix)}"  # noqa: S608
        if self._refuse_taken:
            return sql
        conflict = ", ".join(self.key)
        if self._updated:
            assignments = ", ".join(f"{name} = excluded.{name}" for name in self._updated)
            return f"{sql} ON CONFLICT ({conflict}) DO UPDATE SET {assignments}"
        return f"{sql} ON CONFLICT ({conflict}) DO NOTHING"

    def params(self, prefix: str, rows: Sequence[dict[str, Any]], dialect: Dialect) -> dict[str, str]:
        defaults = {name: _python_default(self.table.c[name]) for name in self.defaulted}
        columns: list[tuple[str, list[Any]]] = []
        for name, bind, to_json in self._converters:
            if name in defaults:
                default = defaults[name]
                assert default is not None
                values = [default()] * len(rows)
            else:
                values = [row[name] for row in rows]
            if bind is not None:
                values = [bind(value, dialect) for value in values]
            if to_json is not None:
                values = [to_json(value) for value in values]
            columns.append((name, values))
        names = [name for name, _values in columns]
        document = [dict(zip(names, values, strict=True)) for values in zip(*(v for _n, v in columns), strict=True)]
        return {prefix: json.dumps(document, ensure_ascii=False, separators=(",", ":"))}


def _python_default(column: Column[Any]) -> Callable[[], Any] | None:
    """The column's client-side insert default as a function of nothing, if it has one."""
    default = column.default
    if default is None or not default.is_scalar and not default.is_callable:
        return None
    if default.is_scalar:
        value = default.arg  # type: ignore[attr-defined]
        return lambda: value
    function = default.arg  # type: ignore[attr-defined]
    return lambda: function(None)  # SQLAlchemy wraps it to take an execution context


@functools.lru_cache(maxsize=32)
def _write(table: Table, columns: tuple[str, ...], upsert: bool, refuse_taken: bool = False) -> _TableWrite:
    return _TableWrite(table, columns, upsert=upsert, refuse_taken=refuse_taken)


def _columns(table: Table, rows: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    """The table's columns the rows name, in the table's order."""
    named = rows[0].keys()
    return tuple(col.name for col in table.columns if col.name in named)


def uniform(rows: Sequence[dict[str, Any]]) -> bool:
    """Whether every row names the same columns (a column left out must not become NULL)."""
    if not rows:
        return True
    first = rows[0].keys()
    return all(row.keys() == first for row in rows)


# The limits' counts (store/usage.py): each delta added to the stored row, its ring
# merged slot by slot, under the check constraints that refuse a count over its cap.
# The rows are locked in key order, as every batch does, so two never deadlock.
_USAGE_COLUMNS = (
    "tenant, user_id, live, day, day_used, minute_used, ring_sec, ring_cnt, minute_cap, day_cap, live_cap, updated_at"
)
# The ring is merged slot by slot in one pass (a slot given no call keeps what it held; a
# slot of the same second, or a later one from a clock ahead, adds; else it is replaced),
# and the minute counted over the merged ring, up to the newest second the delta placed.
_USAGE_SQL = f"""INSERT INTO policy_usage AS u ({_USAGE_COLUMNS})
SELECT {_USAGE_COLUMNS} FROM json_populate_recordset(NULL::policy_usage, %(usage)s::json) AS rows_
ORDER BY tenant, user_id
ON CONFLICT (tenant, user_id) DO UPDATE SET
 live = GREATEST(u.live + excluded.live, 0),
 day = GREATEST(u.day, excluded.day),
 day_used = CASE WHEN excluded.day > u.day THEN excluded.day_used ELSE u.day_used + excluded.day_used END,
 (ring_sec, ring_cnt, minute_used) = (
   SELECT array_agg(m.ns ORDER BY m.i), array_agg(m.nc ORDER BY m.i),
          CASE WHEN excluded.minute_used = 0 THEN u.minute_used
               ELSE coalesce(sum(m.nc) FILTER (WHERE m.ns > m.latest - {WINDOW_S}), 0) END
   FROM (SELECT r.i,
                CASE WHEN r.ec = 0 THEN r.os ELSE GREATEST(r.os, r.es) END AS ns,
                CASE WHEN r.ec = 0 THEN r.oc WHEN r.os >= r.es THEN r.oc + r.ec ELSE r.ec END AS nc,
                max(CASE WHEN r.ec > 0 THEN r.es END) OVER () AS latest
         FROM unnest(u.ring_sec, u.ring_cnt, excluded.ring_sec, excluded.ring_cnt)
              WITH ORDINALITY AS r(os, oc, es, ec, i)) AS m),
 minute_cap = excluded.minute_cap, day_cap = excluded.day_cap, live_cap = excluded.live_cap,
 updated_at = excluded.updated_at"""  # noqa: S608 - built of constants only

# The tables written by common table expressions, by their rules (batch.py), in this order.
# Flash-call orders are written beside the statement (writes.py).
_PLAN = tuple(rule for rule in RULES if rule.name in ("calls", "commands", "events", "cdrs"))
_RULE = {rule.name: rule for rule in _PLAN}
# The shape of a batch: each present table's name and columns, the outbox's columns, fresh.
_Shape = tuple[tuple[tuple[str, tuple[str, ...]], ...], tuple[str, ...], bool]


def _table_write(rule: TableRule, columns: tuple[str, ...], fresh: bool) -> _TableWrite:
    if rule.refuses_taken(fresh):
        return _write(rule.table, columns, False, True)
    return _write(rule.table, columns, rule.upsert)


@functools.lru_cache(maxsize=64)
def _statement(shape: _Shape) -> str:
    tables, outbox_columns, fresh = shape
    ctes = []
    for name, columns in tables:
        if name == "usage":
            ctes.append(f"usage_ AS ({_USAGE_SQL})")
            continue
        ctes.append(f"{name}_ AS ({_table_write(_RULE[name], columns, fresh).insert(name)})")
    if outbox_columns:
        write = _write(OUTBOX, outbox_columns, False)
        names = ", ".join(write.columns)
        # Ids are drawn from the sequence in the ORDER BY's order, so sorting the
        # returned ids gives the rows' order (RETURNING itself promises none).
        main = (
            f"INSERT INTO outbox ({names}) SELECT {names} FROM {write.source('outbox', ordinality=True)} "  # noqa: S608
            "ORDER BY ordinality RETURNING id"
        )
    else:
        main = "SELECT NULL::bigint AS id WHERE false"
    return (f"WITH {', '.join(ctes)} " if ctes else "") + main


def write_rows(conn: Connection, tables: dict[str, list[dict[str, Any]]], *, fresh: bool = False) -> list[int]:
    """Write calls, commands, events, CDRs and outbox rows in one statement.

    ``tables`` maps "calls", "commands", "events", "cdrs", "usage", "outbox" to their rows
    (empty lists are skipped), the rows of each table naming the same columns
    (see `uniform`; usage rows folded, one per key: ``usage.fold_rows``); returns
    the new outbox ids in the order given. ``fresh``: the calls and commands are
    new, and one already stored raises IntegrityError. A usage count taken over
    its cap raises IntegrityError too (``usage.is_over_limit`` tells which).
    """
    try:
        present, params = _parameters(conn.dialect, tables, fresh)
    except (ValueError, TypeError) as exc:
        # What SQLAlchemy raises when a bind processor refuses a value.
        raise StatementError(str(exc), None, None, exc) from exc
    outbox_columns = _columns(OUTBOX, tables["outbox"]) if tables.get("outbox") else ()
    sql = _statement((tuple(present), outbox_columns, fresh))
    ids = [int(row[0]) for row in conn.exec_driver_sql(sql, params)]
    ids.sort()
    return ids


def _parameters(
    dialect: Dialect, tables: dict[str, list[dict[str, Any]]], fresh: bool
) -> tuple[list[tuple[str, tuple[str, ...]]], dict[str, Any]]:
    """The present tables with their columns, and every parameter array."""
    present: list[tuple[str, tuple[str, ...]]] = []
    params: dict[str, Any] = {}
    for rule in _PLAN:
        rows = tables.get(rule.name) or []
        if not rows:
            continue
        rows = rule.rows_to_write(rows, fresh)
        columns = _columns(rule.table, rows)
        present.append((rule.name, columns))
        params.update(_table_write(rule, columns, fresh).params(rule.name, rows, dialect))
    usage = tables.get("usage") or []
    if usage:
        columns = _columns(USAGE, usage)
        present.append(("usage", columns))
        params.update(_write(USAGE, columns, False).params("usage", usage, dialect))
    outbox = tables.get("outbox") or []
    if outbox:
        params.update(_write(OUTBOX, _columns(OUTBOX, outbox), False).params("outbox", outbox, dialect))
    return present, params
