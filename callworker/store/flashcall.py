"""Queries of flash-call orders; rows come back as plain dicts.

Orders are written with the journal's batches (``Batch.orders``); these are the
reads the flash-call service needs. Tenant-scoped reads filter by tenant, so
another tenant's orders do not exist for the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select

from callworker.store.db import fetch_all, fetch_one, guarded
from callworker.store.models import FLASHCALL_ORDERS as ORDERS

__all__ = [
    "OrderHistory",
    "get_order",
    "latest_order_for_phone",
    "live_orders",
    "order_history",
]

Row = dict[str, Any]

# The status of an order that can still be verified (orders.OrderStatus.OPEN).
OPEN = "open"


@dataclass(frozen=True)
class OrderHistory:
    """What the database knows of a tenant's recent orders, for the abuse limits."""

    last_for_phone: datetime | None  # creation of the phone's newest order, any age
    phone_count: int  # the phone's orders created since the window start
    phone_oldest: datetime | None  # the oldest of those
    tenant_count: int
    tenant_oldest: datetime | None


@guarded
def get_order(engine: Engine, tenant: str, order_id: str) -> Row | None:
    """The order, or None if this tenant has no order with that id."""
    stmt = select(ORDERS).where(ORDERS.c.tenant == tenant, ORDERS.c.order_id == order_id)
    return fetch_one(engine, stmt)


@guarded
def latest_order_for_phone(engine: Engine, tenant: str, phone_key: str) -> Row | None:
    """The tenant's newest order for this phone (by creation), or None."""
    stmt = (
        select(ORDERS)
        .where(ORDERS.c.tenant == tenant, ORDERS.c.phone_key == phone_key)
        .order_by(ORDERS.c.created_at.desc(), ORDERS.c.order_id.desc())
        .limit(1)
    )
    return fetch_one(engine, stmt)


@guarded
def order_history(engine: Engine, tenant: str, phone_key: str, since: datetime) -> OrderHistory:
    """Counts of the phone's and the tenant's orders created at or after ``since``."""
    phone = (ORDERS.c.tenant == tenant, ORDERS.c.phone_key == phone_key)
    recent = ORDERS.c.created_at >= since
    last_stmt = select(func.max(ORDERS.c.created_at)).where(*phone)
    phone_stmt = select(func.count(), func.min(ORDERS.c.created_at)).where(*phone, recent)
    tenant_stmt = select(func.count(), func.min(ORDERS.c.created_at)).where(
        ORDERS.c.tenant == tenant, recent
    )
    # One transaction, so the three figures agree.
    with engine.begin() as conn:
        last = conn.execute(last_stmt).scalar_one()
        phone_count, phone_oldest = conn.execute(phone_stmt).one()
        tenant_count, tenant_oldest = conn.execute(tenant_stmt).one()
    return OrderHistory(
        last_for_phone=_aware(last),
        phone_count=int(phone_count),
        phone_oldest=_aware(phone_oldest),
        tenant_count=int(tenant_count),
        tenant_oldest=_aware(tenant_oldest),
    )


@guarded
def live_orders(engine: Engine, node: str) -> list[Row]:
    """Orders held by ``node`` that can still be verified, oldest first."""
    stmt = (
        select(ORDERS)
        .where(ORDERS.c.node == node, ORDERS.c.status == OPEN)
        .order_by(ORDERS.c.created_at, ORDERS.c.order_id)
    )
    return fetch_all(engine, stmt)


def _aware(value: Any) -> datetime | None:
    """An aware UTC datetime from an aggregate, whatever form the database returns."""
    if value is None:
        return None
    if isinstance(value, str):  # SQLite may return an aggregate of DATETIME text as text
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
