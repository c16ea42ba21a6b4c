"""The open flash-call orders of this node, in memory, and how an order change is recorded.

Like calls, an order belongs to the node that created it and changes only in
that node's journal, so its ``seq`` is handed out by the single writer with no
lock. ``record`` and ``emit`` are called inside journal operations: they put the
order's row and its events into the batch being built; the journal commits them
with everything else of that batch.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from callworker.calls.journal import Unit
from callworker.flashcall.orders import Order
from callworker.store import live_orders

__all__ = ["OrderBook", "event_data"]


def event_data(order: Order, **extra: Any) -> dict[str, Any]:
    """``data`` of a flash-call event: the carrying call, the masked caller ID, the phone."""
    return {"call_id": order.call_id, "cid_mask": order.cid_mask, "phone": order.phone, **extra}


class OrderBook:
    def __init__(self, engine: Engine, node: str) -> None:
        self._engine = engine
        self.node = node
        self.orders: dict[str, Order] = {}

    def load(self) -> None:
        """Take back this node's open orders from the database (after a restart)."""
        rows = live_orders(self._engine, self.node)
        self.orders = {row["order_id"]: Order.from_row(row) for row in rows}

    def get(self, tenant: str, order_id: str) -> Order | None:
        """The open order, if this node holds it for this tenant."""
        order = self.orders.get(order_id)
        return order if order is not None and order.tenant == tenant else None

    def open_for_phone(self, tenant: str, phone_key: str) -> list[Order]:
        return [
            o for o in self.orders.values() if o.tenant == tenant and o.phone_key == phone_key
        ]

    def due(self, now: datetime) -> list[Order]:
        """Open orders whose TTL has passed."""
        return [o for o in self.orders.values() if o.is_open and o.is_due(now)]

    # ------------------------------------------------------- inside the journal

    def record(self, unit: Unit, order: Order) -> None:
        """Put the order's row into the batch; a closed order leaves memory."""
        unit.batch.orders.append(order.row(unit.now))
        if order.is_open:
            self.orders[order.order_id] = order
        else:
            self.orders.pop(order.order_id, None)

    def emit(
        self, unit: Unit, order: Order, event_type: str, occurred_at: datetime, **extra: Any
    ) -> None:
        """A flash-call event with the order's next ``seq``, and the order's row."""
        order.last_seq += 1
        unit.emit_for(
            subject_id=order.order_id, tenant=order.tenant, seq=order.last_seq,
            event_type=event_type, occurred_at=occurred_at, data=event_data(order, **extra),
        )
        self.record(unit, order)
