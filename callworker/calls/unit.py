"""The unit of work of one journal batch: what operations write into it.

An operation (a function the journal runs, see ``journal.py``) changes the calls it
names through a ``Unit``: a state-table signal and its contract event with the
call's next ``seq``, command records, replies, CDRs and the limits' counts, all
gathered into the one ``Batch`` the journal then commits in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from callworker.bus.topology import EVENTS_EXCHANGE
from callworker.calls.record import CallRecord
from callworker.calls.states import TERMINAL, Signal, transition
from callworker.contract import call_snapshot, encode_json, event_routing_key, make_event
from callworker.store import Batch
from callworker.store.usage import Delta

if TYPE_CHECKING:
    from callworker.calls.journal import Journal

__all__ = ["Unit"]


@dataclass
class Unit:
    """The batch under construction; operations write into it through these methods."""

    journal: Journal
    now: datetime
    batch: Batch = field(default_factory=Batch)
    touched: dict[str, CallRecord] = field(default_factory=dict)
    # Run after the batch is committed (e.g. timers that act on what was committed).
    post_commit: list[Callable[[], None]] = field(default_factory=list)
    # A unit of `Journal.open`: its calls join the journal's once committed.
    opening: bool = False

    def call(self, call_id: str) -> CallRecord | None:
        return self.journal.calls.get(call_id)

    def open_call(self, record: CallRecord) -> None:
        if not self.opening:
            self.journal.calls[record.call_id] = record
        self.touched[record.call_id] = record

    def save(self, record: CallRecord) -> None:
        self.touched[record.call_id] = record

    def signal(
        self, record: CallRecord, signal: Signal, occurred_at: datetime, *,
        extra: dict[str, Any] | None = None, **changes: Any,
    ) -> str | None:
        """Apply a signal through the state table; publish its event, if any.

        ``extra`` is added to the event's data (the call snapshot); ``changes`` are set on the call.
        """
        new_status, event_type = transition(record.status, signal)
        if event_type is None:
            return None
        for name, value in changes.items():
            setattr(record, name, value)
        record.status = new_status
        if signal is Signal.ANSWERED:
            record.answered_at = occurred_at
        elif signal in (Signal.HELD, Signal.UNHELD):
            record.on_hold = signal is Signal.HELD
        elif signal in (Signal.MUTED, Signal.UNMUTED):
            record.muted = signal is Signal.MUTED
        if new_status in TERMINAL:
            record.ended_at = occurred_at
            record.on_hold = False
        data = call_snapshot(record.row(self.now), now=occurred_at)
        if extra:
            data.update(extra)
        self.emit(record, event_type, occurred_at, data)
        for observer in self.journal.observers:
            observer(self, record, event_type)
        return event_type

    def emit(self, record: CallRecord, event_type: str, occurred_at: datetime, data: dict) -> None:
        """A contract event for this call: next ``seq``, stored and queued for publishing."""
        if record.scrubs:
            data = record.scrubbed(data)
        record.last_seq += 1
        self.touched[record.call_id] = record
        self.emit_for(
            subject_id=record.call_id, tenant=record.tenant, seq=record.last_seq,
            event_type=event_type, occurred_at=occurred_at, data=data,
        )

    def emit_for(
        self, *, subject_id: str, tenant: str, seq: int, event_type: str,
        occurred_at: datetime, data: dict,
    ) -> dict[str, Any]:
        """Store and queue one contract event of any subject (a call, a flash-call order).

        The caller owns the subject's ``seq`` counter and must persist it in this batch.
        """
        envelope = make_event(
            event_type=event_type,
            tenant=tenant,
            node=self.journal.node,
            subject_id=subject_id,
            seq=seq,
            occurred_at=occurred_at,
            data=data,
        )
        self.batch.events.append(
            {
                "event_id": envelope["event_id"],
                "call_id": subject_id,
                "tenant": tenant,
                "seq": seq,
                "type": event_type,
                "occurred_at": occurred_at,
                "body": envelope,
            }
        )
        self.publish(
            EVENTS_EXCHANGE,
            event_routing_key(tenant, event_type, subject_id),
            encode_json(envelope),
            message_id=envelope["event_id"],
        )
        return envelope

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str | None = None,
        correlation_id: str | None = None,
        headers: dict | None = None,
    ) -> None:
        self.batch.outbox.append(
            {
                "node": self.journal.node,
                "exchange": exchange,
                "routing_key": routing_key,
                "message_id": message_id,
                "correlation_id": correlation_id,
                "headers": headers,
                "body": body,
                "created_at": self.now,
            }
        )

    def save_command(
        self, *, tenant: str, command_id: str, command_type: str, status: str,
        reply: dict | None, call_id: str | None, user_id: str | None = None,
    ) -> None:
        self.batch.commands.append(
            {
                "tenant": tenant,
                "command_id": command_id,
                "type": command_type,
                "status": status,
                "reply": reply,
                "call_id": call_id,
                "user_id": user_id,
                "created_at": self.now,
                "updated_at": self.now,
            }
        )

    def reply(self, reply_to: str | None, correlation_id: str | None, body: dict) -> None:
        """Queue a reply (default exchange, routing key = reply_to) with the batch."""
        if reply_to:
            self.publish("", reply_to, encode_json(body), correlation_id=correlation_id)

    def cdr(self, row: dict[str, Any]) -> None:
        self.batch.cdrs.append(row)

    def count(self, record: CallRecord, deltas: list[Delta]) -> None:
        """Count a new call toward the limits (``deltas``: what it adds, with the caps in force)."""
        record.counted = True
        self.batch.usage.extend(deltas)
