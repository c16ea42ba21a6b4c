"""What a batch is: the rows of one transaction, and the one rule each table's rows follow.

Both writers read this: the per-table path of ``writes.py`` (SQLite) and the
single statement of ``bulk.py`` (PostgreSQL), so they cannot disagree on what a
conflict does. Upserted tables are folded first, one row per key, later values
over earlier ones (the first ``created_at`` kept): PostgreSQL refuses to upsert
one key twice in a statement, and SQLite then stores the same result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table

from callworker.store.models import CALLS, CDRS, COMMANDS, EVENTS, FLASHCALL_ORDERS, RECORDINGS
from callworker.store.usage import Delta

__all__ = ["Batch", "KEEP_ON_CONFLICT", "RULES", "TableRule", "folded"]

# Columns an upsert never overwrites: the first time a row was seen stays true.
KEEP_ON_CONFLICT = frozenset({"created_at"})


@dataclass(frozen=True)
class TableRule:
    """How the rows of one of a batch's tables meet the rows already stored."""

    name: str  # the Batch field holding the rows
    table: Table
    # True: a stored key is updated with the columns the row names (created_at kept).
    # False: a stored row is left as it was (events and CDRs are written once).
    upsert: bool
    # In a ``fresh`` batch (new calls and commands only), a key already stored, or being
    # stored by another transaction, refuses the whole batch: the write is the idempotency check.
    fresh_refuses: bool = False

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(col.name for col in self.table.primary_key.columns)

    def refuses_taken(self, fresh: bool) -> bool:
        return fresh and self.fresh_refuses

    def rows_to_write(self, rows: Sequence[dict[str, Any]], fresh: bool) -> list[dict[str, Any]]:
        """Upserted rows folded one per key; a fresh batch's are not (two of one key must refuse it)."""
        if self.upsert and not self.refuses_taken(fresh):
            return folded(rows, self.key)
        return list(rows)


# In the order they are written.
RULES: tuple[TableRule, ...] = (
    TableRule("calls", CALLS, upsert=True, fresh_refuses=True),
    TableRule("orders", FLASHCALL_ORDERS, upsert=True),
    TableRule("recordings", RECORDINGS, upsert=True),
    TableRule("commands", COMMANDS, upsert=True, fresh_refuses=True),
    TableRule("events", EVENTS, upsert=False),
    TableRule("cdrs", CDRS, upsert=False),
)


def folded(rows: Sequence[dict[str, Any]], key: tuple[str, ...]) -> list[dict[str, Any]]:
    """One row per key, later values over earlier ones (but the first created_at), in first-seen order."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        row_key = tuple(row[name] for name in key)
        first = merged.get(row_key)
        if first is None:
            merged[row_key] = row
        else:
            kept = {name: first[name] for name in KEEP_ON_CONFLICT if name in first}
            merged[row_key] = {**first, **row, **kept}
    return list(merged.values())


@dataclass
class Batch:
    """Rows for one transaction, each a dict of column name to value."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    cdrs: list[dict[str, Any]] = field(default_factory=list)
    commands: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    # What the batch adds to the limits' counts (store/usage.py): calls placed, and ended.
    usage: list[Delta] = field(default_factory=list)
    # Recordings of calls (calls/media.py).
    recordings: list[dict[str, Any]] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (
            self.calls or self.events or self.cdrs or self.commands or self.outbox or self.orders
            or self.usage or self.recordings
        )
