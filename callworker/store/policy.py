"""Policy values stored by ``admin.policy.set``: one row per tenant (user_id '') or user.

Reads are cheap enough to poll: ``overrides_version`` tells whether anything
changed since the last full read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from callworker.store.db import fetch_all, fetch_one, guarded
from callworker.store.models import OVERRIDES, utcnow

__all__ = ["load_overrides", "overrides_version", "save_override"]

Row = dict[str, Any]


@guarded
def load_overrides(engine: Engine) -> list[Row]:
    """Every stored override: tenant, user_id ('' for the tenant), settings."""
    stmt = select(OVERRIDES.c.tenant, OVERRIDES.c.user_id, OVERRIDES.c.settings)
    return fetch_all(engine, stmt.order_by(OVERRIDES.c.tenant, OVERRIDES.c.user_id))


@guarded
def overrides_version(engine: Engine) -> tuple[int, datetime | None]:
    """How many overrides there are and when the last changed: a change of either means reload."""
    row = fetch_one(engine, select(func.count().label("n"), func.max(OVERRIDES.c.updated_at).label("at")))
    assert row is not None
    return int(row["n"]), row["at"]


@guarded
def save_override(engine: Engine, tenant: str, user_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Merge ``changes`` into the stored values (a None value removes that key); returns what is stored.

    An override left with no value is deleted. The row is locked while it is
    merged, so two changes of one tenant at once both land.
    """
    try:
        return _merge(engine, tenant, user_id, changes)
    except IntegrityError:
        # Another node inserted the first row of this key meanwhile: merge into it.
        return _merge(engine, tenant, user_id, changes)


def _merge(engine: Engine, tenant: str, user_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    key = (OVERRIDES.c.tenant == tenant, OVERRIDES.c.user_id == user_id)
    with engine.begin() as conn:
        current = conn.execute(select(OVERRIDES.c.settings).where(*key).with_for_update()).scalar_one_or_none()
        merged = dict(current or {})
        for name, value in changes.items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = value
        if not merged:
            conn.execute(delete(OVERRIDES).where(*key))
        elif current is None:
            conn.execute(insert(OVERRIDES).values(tenant=tenant, user_id=user_id, settings=merged, updated_at=utcnow()))
        else:
            conn.execute(update(OVERRIDES).where(*key).values(settings=merged, updated_at=utcnow()))
    return merged
