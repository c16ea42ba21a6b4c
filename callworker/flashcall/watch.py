"""Following the calls that carry codes, dropping them, and expiring orders on time.

Strategy: the call that carries a code is an ordinary call; the journal tells
every observer about each call event, and ``CallWatch.on_call_event`` (one of
them) turns the events of flash calls into order events in the same batch. It
never blocks there: hanging up is scheduled after the commit. A ringing call is
dropped ``ring_ms`` later with ORIGINATOR_CANCEL, so the phone shows a missed
call; an answered one at once. Dropping first marks the call in the journal
(so its end counts as ours: ``call.cancelled``), then asks FreeSWITCH; a call
that ended meanwhile is fine to miss. The timers live in memory: after each
reconciliation with FreeSWITCH (a restart, a reconnect) ``rearm`` schedules again
the drops of the flash calls still up that have none, and sends again the
hang-ups that could not reach FreeSWITCH, so no phone rings on until the ring
timeout (where it could still be answered). ``Sweeper`` expires open orders
whose TTL passed, so none stays open without its ``flashcall.expired``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import gevent
import gevent.pool

from callworker.calls.journal import Journal, Unit
from callworker.calls.record import CallRecord
from callworker.calls.states import ANSWERED_STATUSES, TERMINAL, Status
from callworker.contract import utcnow
from callworker.errors import FreeSwitchError, StoreUnavailable
from callworker.esl import builders
from callworker.esl.port import FreeSwitchPort
from callworker.flashcall.book import OrderBook
from callworker.flashcall.orders import CALL_OUTCOMES, expire_if_due

__all__ = ["CallWatch", "Sweeper", "Rearm", "rearm_plan"]

log = logging.getLogger("callworker.flashcall")

# How long a drop or a sweep waits for the journal before giving up. A drop is not
# retried (the ring timeout ends the call); a sweep runs again a second later.
JOURNAL_WAIT_S = 30.0


class CallWatch:
    """The journal observer for flash calls, and the hang-ups it schedules."""

    def __init__(
        self, *, journal: Journal, port: FreeSwitchPort, book: OrderBook, ring_ms: int
    ) -> None:
        self._journal = journal
        self._port = port
        self._book = book
        self._ring_s = ring_ms / 1000
        self._timers = gevent.pool.Group()
        # The scheduled drop or hang-up of each call, until it has run.
        self._pending: dict[str, gevent.Greenlet] = {}

    def stop(self) -> None:
        self._timers.kill(timeout=1)
        self._pending.clear()

    def rearm(self) -> int:
        """Schedule again what a restart or an outage lost; returns how many calls.

        Call after reconciliation: the live calls are then those FreeSWITCH still has.
        """
        armed = 0
        for record in list(self._journal.calls.values()):
            plan = rearm_plan(record, self._ring_s)
            if plan is None or record.call_id in self._pending:
                continue
            if plan.cause is None:
                self.drop_later(record.call_id, plan.delay_s)
            else:
                self._spawn(plan.delay_s, self._kill, record.call_id, plan.cause)
            armed += 1
        if armed:
            log.info("%d flash call(s) to drop again after reconnecting", armed)
        return armed

    # ------------------------------------------------------- inside the journal

    def on_call_event(self, unit: Unit, record: CallRecord, event_type: str) -> None:
        """Journal observer: the order events of a flash call's event, and its drop."""
        if record.flashcall_order_id is None:
            return
        call_id = record.call_id
        if event_type == "call.ringing":
            unit.post_commit.append(lambda: self.drop_later(call_id, self._ring_s))
        elif event_type == "call.answered" and not record.hangup_requested:
            record.hangup_requested = True
            unit.save(record)
            unit.post_commit.append(lambda: self._spawn(0, self._kill, call_id, _cause(answered=True)))
        outcome = CALL_OUTCOMES.get(event_type)
        order = self._book.orders.get(record.flashcall_order_id)
        if outcome is None or order is None or order.call_id != call_id:
            return  # a closed order tells nothing more about its call
        call_status, order_event = outcome
        order.call_status = call_status
        if event_type == "call.failed":
            order.hangup_cause = record.hangup_cause
        if order_event is None:
            self._book.record(unit, order)
            return
        extra = {"hangup_cause": record.hangup_cause} if event_type == "call.failed" else {}
        self._book.emit(unit, order, order_event, _occurred_at(unit, record, event_type), **extra)

    # ------------------------------------------------------------ hanging up

    def drop_later(self, call_id: str, delay: float) -> None:
        self._spawn(delay, self.drop, call_id)

    def _spawn(self, delay: float, fn: Callable[..., None], call_id: str, *args: str) -> None:
        timer = gevent.spawn_later(delay, fn, call_id, *args)
        self._pending[call_id] = timer

        def done(finished: gevent.Greenlet) -> None:
            if self._pending.get(call_id) is finished:
                del self._pending[call_id]

        timer.link(done)
        self._timers.add(timer)

    def drop(self, call_id: str) -> None:
        """Hang up a flash call that is still up (marked as the worker's own hangup)."""

        def mark(unit: Unit) -> str | None:
            record = unit.call(call_id)
            if record is None or record.status in TERMINAL or record.hangup_requested:
                return None
            record.hangup_requested = True
            unit.save(record)
            return _cause(answered=record.status in ANSWERED_STATUSES)

        try:
            cause = self._journal.run(mark, timeout=JOURNAL_WAIT_S)
        except (StoreUnavailable, gevent.Timeout):
            log.warning("flash call %s: could not mark it for dropping", call_id)
            return
        if cause is not None:
            self._kill(call_id, cause)

    def _kill(self, call_id: str, cause: str) -> None:
        try:
            reply = self._port.api(builders.uuid_kill(call_id, cause)).strip()
        except FreeSwitchError:
            log.warning(
                "flash call %s: FreeSWITCH unavailable, the ring timeout will end it", call_id
            )
            return
        if reply.startswith("-ERR No such channel"):
            log.debug("flash call %s had already ended", call_id)
        elif not reply.startswith("+OK"):
            # Not a sign the call ended: it stays marked, and its next event, the
            # reconciliation after a reconnect or the ring timeout ends it.
            log.warning("flash call %s: FreeSWITCH did not drop it: %s", call_id, reply[:80])


@dataclass(frozen=True)
class Rearm:
    """What to schedule again for a live flash call: a drop, or a hang-up with ``cause``."""

    delay_s: float
    cause: str | None = None  # None: a drop (marks the call, then hangs up)


def rearm_plan(record: CallRecord, ring_s: float) -> Rearm | None:
    """What a live call needs after a restart or reconnect (None: nothing).

    A hang-up already decided (marked, or the call answered) is sent again at
    once: uuid_kill of a call that is gone only answers -ERR. A call that rang
    is given ``ring_s`` again from now, as the ring time before the loss is not
    kept: the phone rings a little longer, never shorter than it should. A call
    that has not rung yet is armed by its ringing event.
    """
    if record.flashcall_order_id is None or record.status in TERMINAL:
        return None
    answered = record.status in ANSWERED_STATUSES
    if record.hangup_requested or answered:
        return Rearm(0.0, _cause(answered=answered))
    if record.status == Status.RINGING:
        return Rearm(ring_s)
    return None


def _cause(*, answered: bool) -> str:
    # Unanswered: the caller gave up (the phone shows a missed call).
    return "NORMAL_CLEARING" if answered else "ORIGINATOR_CANCEL"


def _occurred_at(unit: Unit, record: CallRecord, event_type: str) -> datetime:
    if event_type == "call.answered" and record.answered_at is not None:
        return record.answered_at
    if record.ended_at is not None:
        return record.ended_at
    return unit.now


class Sweeper:
    """Expires open orders once their TTL has passed (checked every ``interval_s``)."""

    def __init__(self, *, journal: Journal, book: OrderBook, interval_s: float = 1.0) -> None:
        self._journal = journal
        self._book = book
        self._interval_s = interval_s
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(timeout=1)
            self._greenlet = None

    def _run(self) -> None:
        while True:
            gevent.sleep(self._interval_s)  # a period, not a wait for something to happen
            try:
                self.sweep()
            except (StoreUnavailable, gevent.Timeout):
                log.warning("could not expire flash-call orders; will try again")
            except Exception:
                log.exception("expiring flash-call orders failed")

    def sweep(self) -> int:
        """Expire every due order now; returns how many were expired."""
        if not self._book.due(utcnow()):
            return 0

        def op(unit: Unit) -> int:
            expired = 0
            for order in self._book.due(unit.now):
                event = expire_if_due(order, unit.now)
                if event is not None:
                    self._book.emit(unit, order, event, order.expires_at)
                    expired += 1
            return expired

        return int(self._journal.run(op, timeout=JOURNAL_WAIT_S))
