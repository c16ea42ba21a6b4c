"""``flashcall.verify``: one attempt against an order, decided and committed in the journal.

The order this node holds in memory is judged by the pure rules of ``orders``
inside one journal operation, so the attempt count, the events it causes and the
reply commit together and two attempts can never both pass. An order not in
memory is answered from the database when it is closed; an open order of another
node is not this node's to judge (``OrderElsewhere``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine

from callworker.calls.journal import Journal, Unit
from callworker.calls.service import Delivered
from callworker.contract import (
    ContractError,
    ErrorCode,
    FlashcallVerifyCommand,
    reply_error,
    reply_ok,
    utcnow,
)
from callworker.errors import HeldElsewhere
from callworker.flashcall.book import OrderBook
from callworker.flashcall.codes import code_matches
from callworker.flashcall.orders import REFUSALS, Order, Verdict, judge_attempt
from callworker.flashcall.replies import commit_reply, contract_error, refusals_as_replies
from callworker.store import get_order, latest_order_for_phone

__all__ = ["OrderElsewhere", "Verifier"]

REFUSAL_MESSAGES = {
    ErrorCode.ORDER_CLOSED: "the order is closed: verified already, or superseded by a newer order",
    ErrorCode.ORDER_EXPIRED: "the order has expired",
    ErrorCode.TOO_MANY_ATTEMPTS: "too many wrong codes: the order is locked",
}


class OrderElsewhere(HeldElsewhere):
    """The order is open on another node; only that node can verify it."""


class Verifier:
    def __init__(
        self, *, journal: Journal, engine: Engine, book: OrderBook, node: str, key: bytes
    ) -> None:
        self._journal = journal
        self._engine = engine
        self._book = book
        self._node = node
        self._key = key

    def verify(self, command: FlashcallVerifyCommand, to: Delivered) -> dict[str, Any]:
        return refusals_as_replies(self._journal, command, to, lambda: self._verify(command, to))

    def _verify(self, command: FlashcallVerifyCommand, to: Delivered) -> dict[str, Any]:
        order = self._book.get(command.tenant, command.id)
        if order is None:
            order = self._stored_order(command)
        superseded = self._superseded(order)
        return self._journal.run(self._verify_op(command, to, order, superseded))

    def _refused(self, command: FlashcallVerifyCommand, code: ErrorCode) -> ContractError:
        return contract_error(command, code, REFUSAL_MESSAGES[code], id=command.id)

    def _stored_order(self, command: FlashcallVerifyCommand) -> Order:
        """An order this node does not hold in memory: a refusal, or elsewhere, or ours."""
        row = get_order(self._engine, command.tenant, command.id)
        if row is None:
            message = "no such flash-call order"
            raise contract_error(command, ErrorCode.ORDER_NOT_FOUND, message, id=command.id)
        order = Order.from_row(row)
        if not order.is_open:
            raise self._refused(command, REFUSALS[order.status])
        if order.node != self._node:
            if order.is_due(utcnow()):
                raise self._refused(command, ErrorCode.ORDER_EXPIRED)
            raise OrderElsewhere(order.node)
        return order  # open and ours, though not in memory: taken back by the operation

    def _superseded(self, order: Order) -> bool:
        """Whether a newer order for the phone exists (possibly placed by another node)."""
        if not order.is_open:
            return False
        latest = latest_order_for_phone(self._engine, order.tenant, order.phone_key)
        if latest is None:
            return False
        # Compared by (created_at, order_id), the order the query sorts by; an order
        # not committed yet is not seen here (the operation checks memory for it).
        return (latest["created_at"], latest["order_id"]) > (order.created_at, order.order_id)

    def _verify_op(
        self, command: FlashcallVerifyCommand, to: Delivered, order: Order, superseded: bool
    ) -> Callable[[Unit], dict[str, Any]]:
        def op(unit: Unit) -> dict[str, Any]:
            if order.is_open:
                self._book.orders.setdefault(order.order_id, order)
            newer = self._book.open_for_phone(order.tenant, order.phone_key)
            replaced = superseded or any(o.created_at > order.created_at for o in newer)
            matched = code_matches(
                self._key, order.order_id, order.code_hmac, command.code,
                prefix=order.cid_prefix, length=order.code_len,
            )
            verdict = judge_attempt(order, matched=matched, now=unit.now, superseded=replaced)
            for event in verdict.events:
                at = order.expires_at if event == "flashcall.expired" else unit.now
                rejected = event == "flashcall.rejected"
                extra = {"attempts_left": order.attempts_left} if rejected else {}
                self._book.emit(unit, order, event, at, **extra)
            self._book.record(unit, order)
            reply = self._reply(command, order, verdict)
            commit_reply(unit, command, to, reply)
            return reply

        return op

    def _reply(
        self, command: FlashcallVerifyCommand, order: Order, verdict: Verdict
    ) -> dict[str, Any]:
        if verdict.refusal is not None:
            message = REFUSAL_MESSAGES[verdict.refusal]
            return reply_error(contract_error(command, verdict.refusal, message, id=order.order_id))
        if verdict.success:
            return reply_ok(command.command_id, command.type, {"success": True})
        result = {"success": False, "attempts_left": verdict.attempts_left}
        return reply_ok(command.command_id, command.type, result)
