"""``call.events``: the stored events of a call or flash-call order, as they were published.

A consumer that sees a gap in a call's ``seq`` asks for the events from the
first missing one. Each event is the stored envelope itself (the one whose
bytes the outbox published, same ``event_id``), in ``seq`` order. Only
committed events are stored, so a live call's newest event may still be on its
way. Another tenant's call or order does not exist: ``CALL_NOT_FOUND``
(``ORDER_NOT_FOUND`` for ``order_id``), the answer for an id never used.

A reply stays within the contract's 64 KiB: events that would pass it are left
for the next ask (``has_more``), at least one is always answered.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from callworker.calls.journal import Journal
from callworker.calls.service import Delivered, finish
from callworker.contract import (
    MAX_BODY_BYTES,
    CallEventsCommand,
    ContractError,
    ErrorCode,
    encode_json,
    reply_error,
    reply_ok,
)
from callworker.store import get_call, get_order, subject_events

__all__ = ["EventReplay"]

# Room left in a reply for its envelope and the list's punctuation.
_ROOM = MAX_BODY_BYTES - 1024


class EventReplay:
    def __init__(self, *, journal: Journal, engine: Engine) -> None:
        self._journal = journal
        self._engine = engine

    def handlers(self) -> dict[str, Any]:
        return {"call.events": self.call_events}

    def call_events(self, command: CallEventsCommand, to: Delivered) -> dict[str, Any]:
        try:
            reply = reply_ok(command.command_id, command.type, self._events(command))
        except ContractError as error:
            reply = reply_error(error)
        return finish(self._journal, command, to, reply)

    def _events(self, command: CallEventsCommand) -> dict[str, Any]:
        subject = command.call_id or command.order_id
        assert subject is not None  # the command names one
        is_order = command.order_id is not None
        rows = subject_events(self._engine, command.tenant, subject, command.from_seq, command.limit + 1)
        # The id must name a call (or an order) of this tenant: an order's id given as a
        # call_id, or a call's as an order_id, names nothing.
        of_other_kind = bool(rows) and rows[0]["type"].startswith("flashcall.") != is_order
        if of_other_kind or (not rows and not self._exists(command.tenant, subject, is_order)):
            code = ErrorCode.ORDER_NOT_FOUND if is_order else ErrorCode.CALL_NOT_FOUND
            field = "order_id" if is_order else "call_id"
            raise ContractError(code, f"no such {'order' if is_order else 'call'}", details={field: subject},
                                command_id=command.command_id, command_type=command.type)
        events: list[Any] = []
        size = 0
        for row in rows[: command.limit]:
            size += len(encode_json(row["body"])) + 1
            if events and size > _ROOM:
                break
            events.append(row["body"])
        return {"events": events, "has_more": len(rows) > len(events)}

    def _exists(self, tenant: str, subject: str, is_order: bool) -> bool:
        if is_order:
            return get_order(self._engine, tenant, subject) is not None
        return get_call(self._engine, tenant, subject) is not None
