"""CDRs for billing: a tenant's records of a time range, read in pages, oldest first.

Strategy: keyset pages over (start_stamp, call_id). Each page is one short query that
starts where the last one ended, so memory stays at one page whatever the range, no
transaction stays open while the caller writes the rows out, and the index on
(tenant, start_stamp) serves every page. OFFSET would read every skipped row again.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select
from sqlalchemy.engine import make_url

from callworker.errors import ConfigError
from callworker.store.db import fetch_all, fetch_one, guarded, make_engine, normalise_url
from callworker.store.models import CDRS

__all__ = ["DEFAULT_PAGE", "count_cdrs", "iter_cdrs", "open_existing"]

DEFAULT_PAGE = 1000


def open_existing(url: str) -> Engine:
    """An engine for a database that must already exist.

    A reader must not leave an empty SQLite file behind where it expected records
    (SQLite creates the file it is asked to open).
    """
    try:
        parsed = make_url(normalise_url(url))
    except Exception:  # noqa: BLE001 - the parser's message repeats the URL, password included
        raise ConfigError("the database URL cannot be parsed") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        if not Path(parsed.database).is_file():
            raise ConfigError(f"no database at {parsed.database}: set CALLWORKER_DATABASE_URL")
    return make_engine(url, pool_size=1)


def _in_range(tenant: str, from_: datetime, to: datetime) -> list[Any]:
    """from inclusive, to exclusive, as cdr.list bounds start_stamp."""
    return [CDRS.c.tenant == tenant, CDRS.c.start_stamp >= from_, CDRS.c.start_stamp < to]


@guarded
def count_cdrs(engine: Engine, tenant: str, from_: datetime, to: datetime) -> int:
    """How many CDRs of ``tenant`` started in [from_, to)."""
    row = fetch_one(engine, select(func.count().label("n")).select_from(CDRS).where(*_in_range(tenant, from_, to)))
    return int(row["n"]) if row else 0


@guarded
def _page_after(
    engine: Engine, tenant: str, from_: datetime, to: datetime, after: tuple[datetime, str] | None, size: int
) -> list[dict[str, Any]]:
    where = _in_range(tenant, from_, to)
    if after is not None:
        stamp, call_id = after
        where.append(or_(CDRS.c.start_stamp > stamp, and_(CDRS.c.start_stamp == stamp, CDRS.c.call_id > call_id)))
    stmt = select(CDRS).where(*where).order_by(CDRS.c.start_stamp, CDRS.c.call_id).limit(size)
    return fetch_all(engine, stmt)


def iter_cdrs(
    engine: Engine, tenant: str, from_: datetime, to: datetime, *, page: int = DEFAULT_PAGE
) -> Iterator[dict[str, Any]]:
    """Every CDR of ``tenant`` that started in [from_, to), by start_stamp then call_id.

    A row stored meanwhile with a start_stamp past the last page read is included.
    Raises StoreUnavailable when the database cannot be read.
    """
    after: tuple[datetime, str] | None = None
    while True:
        rows = _page_after(engine, tenant, from_, to, after, page)
        yield from rows
        if len(rows) < page:
            return
        last = rows[-1]
        after = (last["start_stamp"], last["call_id"])
