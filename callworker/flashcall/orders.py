"""A flash-call order as the worker holds it, and the pure rules of its life.

Strategy: an order has two independent sides. Its *status* says whether it can
still be verified: ``open`` until it is verified, superseded by a newer order
for the same phone, expired (TTL) or locked (too many wrong codes); every one of
those is final. Its *call status* follows the call that carries the code
(initiated, ringing, answered, failed, dropped) and never closes the order: the
user may have seen the caller ID before the call failed. The rules below change
an order in memory and say which contract events follow; the service runs them
inside journal operations, which persist the order and publish the events.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

from callworker.contract import ErrorCode
from callworker.flashcall.codes import mask

__all__ = [
    "CALL_OUTCOMES",
    "ORDER_COLUMNS",
    "REFUSALS",
    "Order",
    "OrderStatus",
    "Verdict",
    "close",
    "expire_if_due",
    "judge_attempt",
    "phone_key",
]


class OrderStatus(StrEnum):
    OPEN = "open"
    VERIFIED = "verified"
    SUPERSEDED = "superseded"
    EXPIRED = "expired"
    LOCKED = "locked"


# What a verify gets from an order that is no longer open.
REFUSALS: dict[OrderStatus, ErrorCode] = {
    OrderStatus.VERIFIED: ErrorCode.ORDER_CLOSED,
    OrderStatus.SUPERSEDED: ErrorCode.ORDER_CLOSED,
    OrderStatus.EXPIRED: ErrorCode.ORDER_EXPIRED,
    OrderStatus.LOCKED: ErrorCode.TOO_MANY_ATTEMPTS,
}

# The event that tells an order's close. A superseded order closes silently: the
# newer order's flashcall.created names it (data.supersedes).
_CLOSING_EVENTS: dict[OrderStatus, str | None] = {
    OrderStatus.VERIFIED: "flashcall.verified",
    OrderStatus.SUPERSEDED: None,
    OrderStatus.EXPIRED: "flashcall.expired",
    OrderStatus.LOCKED: "flashcall.locked",
}

# Call event of the carrying call -> (the order's new call status, order event or None).
# call.completed is an answered call that the worker hung up: nothing new to tell.
CALL_OUTCOMES: dict[str, tuple[str, str | None]] = {
    "call.ringing": ("ringing", "flashcall.ringing"),
    "call.answered": ("answered", "flashcall.answered"),
    "call.failed": ("failed", "flashcall.failed"),
    "call.cancelled": ("dropped", None),
}


def phone_key(phone: str) -> str:
    """The phone's digits: ``+15551230001`` and ``15551230001`` are one phone."""
    return phone.lstrip("+")


@dataclass(slots=True)
class Order:
    order_id: str
    tenant: str
    node: str
    phone: str
    phone_key: str
    status: OrderStatus
    code_hmac: str
    code_len: int
    cid_prefix: str
    max_attempts: int
    created_at: datetime
    expires_at: datetime
    call_id: str | None = None
    call_status: str | None = None
    hangup_cause: str | None = None
    attempts: int = 0
    last_seq: int = 0
    supersedes: str | None = None
    closed_at: datetime | None = None
    user_id: str | None = None
    gateway: str | None = None

    @property
    def cid_mask(self) -> str:
        return mask(self.cid_prefix, self.code_len)

    @property
    def attempts_left(self) -> int:
        return max(0, self.max_attempts - self.attempts)

    @property
    def is_open(self) -> bool:
        return self.status is OrderStatus.OPEN

    def is_due(self, now: datetime) -> bool:
        """Whether the TTL has passed."""
        return now >= self.expires_at

    def row(self, now: datetime) -> dict[str, Any]:
        """The ``flashcall_orders`` row."""
        row = {name: getattr(self, name) for name in ORDER_COLUMNS}
        row["status"] = str(self.status)
        row["updated_at"] = now
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Order:
        values = {name: row[name] for name in ORDER_COLUMNS if name in row}
        values["status"] = OrderStatus(values["status"])
        return cls(**values)


ORDER_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Order))


@dataclass(frozen=True)
class Verdict:
    """The outcome of one verify attempt: events to publish, then the reply."""

    events: tuple[str, ...] = ()
    refusal: ErrorCode | None = None
    success: bool = False
    attempts_left: int | None = None


def close(order: Order, status: OrderStatus, now: datetime) -> str | None:
    """Close an open order; returns the event that tells it (None for supersede)."""
    if not order.is_open or status is OrderStatus.OPEN:
        raise ValueError("only an open order can be closed, and only to a final status")
    order.status = status
    order.closed_at = now
    return _CLOSING_EVENTS[status]


def expire_if_due(order: Order, now: datetime) -> str | None:
    """Expire an open order whose TTL passed; returns ``flashcall.expired`` if it did."""
    if order.is_open and order.is_due(now):
        return close(order, OrderStatus.EXPIRED, now)
    return None


def judge_attempt(
    order: Order, *, matched: bool, now: datetime, superseded: bool = False
) -> Verdict:
    """Apply one verify attempt (``matched``: the code was right).

    ``superseded``: a newer order for the phone exists (found in the database; it
    may have been placed by another node).
    """
    events: list[str] = []
    if order.is_open and superseded:
        close(order, OrderStatus.SUPERSEDED, now)
    if (expired := expire_if_due(order, now)) is not None:
        events.append(expired)
    if not order.is_open:
        return Verdict(tuple(events), refusal=REFUSALS[order.status])
    if matched:
        verified = close(order, OrderStatus.VERIFIED, now)
        return Verdict((verified,) if verified else (), success=True)
    order.attempts += 1
    events.append("flashcall.rejected")
    if order.attempts >= order.max_attempts:
        locked = close(order, OrderStatus.LOCKED, now)
        if locked:
            events.append(locked)
    return Verdict(tuple(events), attempts_left=order.attempts_left)
