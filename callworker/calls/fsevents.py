"""FreeSWITCH events to journal operations.

The pump reads the ESL event queue and turns the few events the worker
subscribes to into operations on the call they name. Anything costly to read
(the CDR variables) is read here, outside the journal's single greenlet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

import gevent
import gevent.event

from callworker.calls.cdr import cdr_fields, cdr_row, epoch_us, synthetic_cdr_fields
from callworker.calls.clean import clean_token
from callworker.calls.journal import Journal, Unit
from callworker.calls.record import CallRecord
from callworker.calls.states import ANSWERED_STATUSES, FS_EVENT_SIGNALS, TERMINAL, Signal, end_signal
from callworker.contract import cdr_data, utcnow
from callworker.esl.codec import Event
from callworker.policy.cost import cost_cents, quality_score
from callworker.store.usage import ended

__all__ = [
    "PRECIOUS_EVENTS", "SUBSCRIBED_EVENTS", "EventPump", "EventSource", "end_call", "end_reconstructed",
    "held_by",
]

log = logging.getLogger("callworker.events")

SUBSCRIBED_EVENTS: tuple[str, ...] = ("CHANNEL_CREATE", "BACKGROUND_JOB", *FS_EVENT_SIGNALS)
# Kept longest when events must be dropped: the real CDR, and the outcome of an
# originate that made no channel. What the others said, a later hangup or the
# reconciliation tells again (all but hold changes and dialplan hooks).
PRECIOUS_EVENTS = frozenset({"CHANNEL_HANGUP_COMPLETE", "BACKGROUND_JOB"})


def _occurred_at(event: Event) -> datetime:
    return epoch_us(event.get("Event-Date-Timestamp")) or utcnow()


def end_call(
    unit: Unit, record: CallRecord, *, cause: str | None, occurred_at: datetime,
    cdr: dict[str, Any], reconstructed: bool = False,
) -> None:
    """The terminal event and the CDR of a call, in one batch and in that order."""
    if record.status in TERMINAL:
        return
    row = cdr_row(record, cdr, now=unit.now, reconstructed=reconstructed)
    # Computed once, with the rates in force now, and kept: the terminal event's
    # snapshot, the call row and the CDR all carry the same figures.
    row["cost_cents"] = cost_cents(unit.journal.rates(record.tenant), record.destination_number, row["billsec"])
    row["quality_score"] = quality_score(row["rtp_audio_in_mos"])
    record.cost_cents, record.quality_score = row["cost_cents"], row["quality_score"]
    row["recordings"] = []
    for ender in unit.journal.enders:
        ender(unit, record, row)
    unit.signal(record, end_signal(record.hangup_requested), occurred_at, hangup_cause=cause)
    if record.counted:
        # Its slot among the calls not yet ended is given back in the batch that ends it.
        unit.batch.usage.extend(ended(record.tenant, record.user_id))
    unit.cdr(row)
    unit.emit(record, "call.cdr", occurred_at, cdr_data(row))


def end_reconstructed(unit: Unit, record: CallRecord) -> None:
    """End a call that FreeSWITCH no longer has, its hangup unheard: a reconstructed CDR."""
    answered = record.status in ANSWERED_STATUSES
    cause = "NORMAL_CLEARING" if answered else "NORMAL_TEMPORARY_FAILURE"
    cdr = synthetic_cdr_fields(record, cause, unit.now)
    if answered and record.answered_at is not None:
        cdr["answer_stamp"] = record.answered_at
    end_call(unit, record, cause=cause, occurred_at=unit.now, cdr=cdr, reconstructed=True)


def _signal_op(
    call_id: str, signal: Signal, occurred_at: datetime, extra: dict[str, Any] | None = None,
) -> Callable[[Unit], None]:
    def op(unit: Unit) -> None:
        record = unit.call(call_id)
        if record is not None:
            record.channel_seen = True
            unit.signal(record, signal, occurred_at, extra=extra)

    return op


# FreeSWITCH marks a leg held from two places: switch_ivr_hold when this switch holds it
# (uuid_hold), switch_channel_mark_hold when the far end's re-INVITE put it on hold.
_FAR_END_HOLD = "switch_channel_mark_hold"


def held_by(event: Event) -> dict[str, Any]:
    """``data.held_by`` of call.held / call.unheld: ``us`` or ``far_end``."""
    far = event.get("Event-Calling-Function") == _FAR_END_HOLD
    return {"held_by": "far_end" if far else "us"}


def _hangup_op(call_id: str, cause: str | None, occurred_at: datetime, cdr: dict[str, Any]) -> Callable[[Unit], None]:
    def op(unit: Unit) -> None:
        record = unit.call(call_id)
        if record is not None:
            record.channel_seen = True
            _missed_before_hangup(unit, record, cdr)
            end_call(unit, record, cause=cause, occurred_at=occurred_at, cdr=cdr)

    return op


def _missed_before_hangup(unit: Unit, record: CallRecord, cdr: dict[str, Any]) -> None:
    """The ringing and answer the CDR shows but whose events never came (dropped on the way).

    Usually the call has them already and the state table ignores them.
    """
    answered_at, start, pdd_ms = cdr.get("answer_stamp"), cdr.get("start_stamp"), cdr.get("pdd_ms")
    if pdd_ms is not None and start is not None:
        unit.signal(record, Signal.RINGING, start + timedelta(milliseconds=pdd_ms))
    if answered_at is not None:
        unit.signal(record, Signal.ANSWERED, answered_at)


def _created_op(call_id: str) -> Callable[[Unit], None]:
    def op(unit: Unit) -> None:
        record = unit.call(call_id)
        if record is not None:
            record.channel_seen = True

    return op


def _job_failed_op(call_id: str, cause: str, occurred_at: datetime) -> Callable[[Unit], None]:
    """BACKGROUND_JOB -ERR: the call ended here only if FreeSWITCH never made a channel."""

    def op(unit: Unit) -> None:
        record = unit.call(call_id)
        if record is None or record.channel_seen:
            return  # the channel's own HANGUP_COMPLETE ends it, with the real CDR
        cdr = synthetic_cdr_fields(record, cause, occurred_at)
        end_call(unit, record, cause=cause, occurred_at=occurred_at, cdr=cdr)

    return op


class EventSource(Protocol):
    def get(self) -> Event: ...


class EventPump:
    """Reads the ESL event queue and submits one operation per relevant event."""

    def __init__(self, events: EventSource, journal: Journal) -> None:
        self._events = events
        self._journal = journal
        self._greenlet: gevent.Greenlet | None = None
        self._extra: dict[str, Callable[[Event], None]] = {}
        self.handled = 0
        self.taken = 0  # events taken from the queue and handed on (relevant or not)
        self._progress = gevent.event.Event()

    def on(self, event_name: str, handler: Callable[[Event], None]) -> None:
        """Route another subscribed event (e.g. CUSTOM) to ``handler``, in stream order."""
        self._extra[event_name] = handler

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(timeout=1)
            self._greenlet = None

    def _run(self) -> None:
        while True:
            event = self._events.get()
            try:
                self.handle(event)
            except Exception:
                log.exception("could not handle %s", event.name)
            self.taken += 1
            self._progress.set()

    def wait_taken(self, count: int) -> None:
        """Return once ``count`` events in all have been taken and their operations submitted.

        The journal runs operations in the order submitted, so one submitted after
        this returns runs after those of the events.
        """
        while self.taken < count:
            self._progress.clear()
            if self.taken < count:
                self._progress.wait()

    def handle(self, event: Event) -> None:
        name = event.name
        extra = self._extra.get(name)
        if extra is not None:
            extra(event)
            return
        if name == "BACKGROUND_JOB":
            self._background_job(event)
            return
        call_id = event.get("Unique-ID")
        if not self._journal.knows(call_id):
            return
        assert call_id is not None
        self.handled += 1
        if name == "CHANNEL_CREATE":
            self._journal.submit(_created_op(call_id))
        elif name == "CHANNEL_HANGUP_COMPLETE":
            cdr = cdr_fields(event)
            self._journal.submit(_hangup_op(call_id, cdr["hangup_cause"], _occurred_at(event), cdr))
        elif (signal := FS_EVENT_SIGNALS.get(name)) is not None:
            data = held_by(event) if signal in (Signal.HELD, Signal.UNHELD) else None
            self._journal.submit(_signal_op(call_id, signal, _occurred_at(event), data))

    def _background_job(self, event: Event) -> None:
        # Originates are sent with Job-UUID = call_id, so the job names its call.
        call_id = event.get("Job-UUID")
        body = (event.body or "").strip()
        if not self._journal.knows(call_id) or not body.startswith("-ERR"):
            return
        assert call_id is not None
        words = body[4:].split()
        cause = clean_token(words[0] if words else None) or "NORMAL_TEMPORARY_FAILURE"
        self.handled += 1
        self._journal.submit(_job_failed_op(call_id, cause, _occurred_at(event)))
