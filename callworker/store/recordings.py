"""Reads of the ``recordings`` table (rows are written with the journal's batches)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, select

from callworker.store.db import fetch_all, guarded
from callworker.store.models import RECORDINGS

__all__ = ["recordings_of_calls"]

_CHUNK = 500


@guarded
def recordings_of_calls(engine: Engine, call_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The recordings of these calls, oldest first (by when they were asked for)."""
    rows: list[dict[str, Any]] = []
    ids = list(call_ids)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        rows.extend(fetch_all(engine, select(RECORDINGS).where(RECORDINGS.c.call_id.in_(chunk))))
    rows.sort(key=lambda row: (row["updated_at"] if row["started_at"] is None else row["started_at"]))
    return rows
