"""The journal: the one greenlet that changes call state and writes it down.

Strategy: every change to a call — from a FreeSWITCH event or from a command —
is an *operation*, a function run here, one after another, against the calls
held in memory. Operations of one batch share one database transaction that
holds the new call rows, the contract events with their ``seq``, CDRs, command
records, and the outbox rows (events and replies) to publish. Only after the
commit are the waiting callers released and the relay told what to publish.

One writer means ``seq`` is handed out in order with no lock, a call's events
are committed (and so published) in ``seq`` order, and a batch of hundreds of
events costs one round trip. A batch made only of FreeSWITCH events waits up to
``linger`` seconds for more before it is written (a command ends the wait): fewer,
larger commits leave the database and this process more time for the commands,
whose callers are waiting. If the database is down the batch is retried with
backoff; the queues in front of the journal are bounded, so FreeSWITCH events
and commands wait upstream rather than pile up in memory. A retry first asks
whether the failed attempt committed after all (a connection cut between the
commit and its answer): if so nothing is written again, and the relay reads that
batch's outbox rows from the database instead of being told of them, so no event
is published twice and none out of its call's order.

New calls opened by commands (`open`) are committed beside that loop, on a
greenlet and a connection of their own: such a call has nothing in the batch in
flight to come after, so its caller, who waits for the reply, does not wait for
that batch either. Their batch is written fresh (plain inserts of the call and
the command), so the write is also the idempotency check: a call id or command
id the database holds refuses it (`AlreadyStored`) and nothing is dialled. The
relay takes their outbox ids even when a later id was committed first.

A new call counted toward the limits carries its usage deltas into that same
fresh write (``Unit.count``), whose caps the database enforces: a write over a
cap is refused whole (nothing stored, nothing dialled). The opener then asks
``judge`` (the limits, reading the counts afresh) which calls of the group go
out, writes those, and fails the others with ``OverLimit``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import gevent
from gevent.event import AsyncResult
from gevent.queue import Empty, Full, Queue
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, IntegrityError, StatementError

from callworker.backoff import Backoff
from callworker.bus.relay import OutboxItem
from callworker.calls.record import CallRecord
from callworker.calls.states import TERMINAL
from callworker.calls.unit import Unit
from callworker.contract import utcnow
from callworker.errors import AlreadyStored, OverLimit, StoreUnavailable
from callworker.store import Batch, batch_stored, live_calls, write_batch
from callworker.store.usage import Delta, refused_limit
from callworker.turns import Turns

__all__ = ["Journal", "Unit", "Op"]

log = logging.getLogger("callworker.journal")
# A batch this large is written at once: lingering would not make it much cheaper.
_LINGER_BELOW = 64
# Running a batch's operations lets the hub in after this long (see callworker.turns).
_SLICE_S = 0.0005
# A group refused over a limit is judged and written again at most this often; then
# each call is written alone.
_JUDGED_TRIES = 2
T = TypeVar("T")


Op = Callable[[Unit], Any]
Q = TypeVar("Q")


def _take_queued(queue: Queue[Q], limit: int) -> list[Q]:
    """The next item (waiting for it) and whatever else is queued already, up to ``limit``."""
    taken = [queue.get()]
    while len(taken) < limit:
        try:
            taken.append(queue.get_nowait())
        except Empty:
            break
    return taken


@dataclass
class _Pending(Generic[T]):
    op: Callable[[Unit], T]
    result: AsyncResult | None


@dataclass
class _Opening:
    unit: Unit
    result: AsyncResult


class Journal:
    """Runs operations one after another and commits them in batches."""

    def __init__(
        self,
        engine: Engine,
        *,
        node: str,
        notify: Callable[[list[OutboxItem]], None],
        rescan: Callable[[], None] = lambda: None,
        batch_max: int = 500,
        queue_size: int = 10000,
        linger: float = 0.0,
    ) -> None:
        self._engine = engine
        self.node = node
        self._notify = notify
        # Tells the relay to read committed rows that no notify will bring.
        self._rescan = rescan
        self._batch_max = batch_max
        self._linger = linger
        self._queue: Queue[_Pending[Any]] = Queue(maxsize=queue_size)
        self._openings: Queue[_Opening] = Queue(maxsize=queue_size)
        self._greenlet: gevent.Greenlet | None = None
        self._opener: gevent.Greenlet | None = None
        self.calls: dict[str, CallRecord] = {}
        # Called inside the batch after every call event: (unit, call, event type).
        self.observers: list[Callable[[Unit, CallRecord, str], None]] = []
        # Called inside the batch when a call ends, before its terminal event: (unit, call,
        # its CDR row), e.g. to report what was still running and list it in the CDR.
        self.enders: list[Callable[[Unit, CallRecord, dict[str, Any]], None]] = []
        # Called when memory must be rebuilt from the database (after a refused batch).
        self.reloaders: list[Callable[[], None]] = []
        # Told the usage deltas of every batch committed (calls placed and ended).
        self.usage_watchers: list[Callable[[list[Delta]], None]] = []
        # Which new calls of a group refused over a limit go out: (their deltas, now) -> refusal or None each.
        self.judge: Callable[[list[list[Delta]], datetime], list[Any]] | None = None
        # The policy's rates of a tenant, for the cost of its calls (set by the wiring).
        self.rates: Callable[[str], Any] = lambda tenant: ()
        self.healthy = True
        self.batches = 0
        self.turns = Turns(_SLICE_S)

    # ------------------------------------------------------------------ life

    def load(self) -> None:
        """Take back the live calls of this node from the database (after a restart)."""
        for row in live_calls(self._engine, self.node):
            record = CallRecord.from_row(row)
            record.channel_seen = True
            self.calls[record.call_id] = record

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run)
        self._opener = gevent.spawn(self._run_openings)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish what was submitted, then stop."""
        if self._greenlet is None or self._opener is None:
            return
        deadline = time.monotonic() + timeout
        try:
            # Bounded queues: a journal stuck on a dead database may have no room left.
            opened = AsyncResult()
            self._openings.put(_Opening(Unit(self, utcnow(), opening=True), opened), timeout=timeout)
            opened.wait(max(0.0, deadline - time.monotonic()))
            done = AsyncResult()
            self._queue.put(_Pending(lambda unit: None, done), timeout=max(0.0, deadline - time.monotonic()))
            done.wait(max(0.0, deadline - time.monotonic()))
        except Full:
            log.warning("the journal did not finish what was submitted within %g s", timeout)
        gevent.killall([self._greenlet, self._opener], timeout=1)
        self._greenlet = self._opener = None

    # --------------------------------------------------------------- submit

    def knows(self, call_id: str | None) -> bool:
        return call_id is not None and call_id in self.calls

    def submit(self, op: Op) -> None:
        """Run ``op`` in the journal; nobody waits for it (FreeSWITCH events)."""
        self._queue.put(_Pending(op, None))

    def run(self, op: Callable[[Unit], T], timeout: float | None = None) -> T:
        """Run ``op`` in the journal and return its result once committed."""
        result: AsyncResult = AsyncResult()
        self._queue.put(_Pending(op, result))
        return result.get(timeout=timeout)  # type: ignore[no-any-return]

    def open(self, op: Callable[[Unit], T], timeout: float | None = None) -> T:
        """Run ``op``, which opens new calls with their commands, and return once committed.

        ``op`` runs here, in the caller's greenlet; its calls become the journal's
        when committed. Raises AlreadyStored when one of its call ids or command
        ids is stored already (nothing of it is then stored).
        """
        unit = Unit(self, utcnow(), opening=True)
        value = op(unit)
        result: AsyncResult = AsyncResult()
        self._openings.put(_Opening(unit, result))
        result.get(timeout=timeout)
        return value

    # ----------------------------------------------------------------- loop

    def _run(self) -> None:
        while True:
            pending = self._gather()
            try:
                self._process(pending)
            except Exception as exc:  # never let the one writer die
                log.exception("journal batch failed")
                for item in pending:
                    if item.result is not None and not item.result.ready():
                        item.result.set_exception(exc)

    def _gather(self) -> list[_Pending[Any]]:
        """The next batch: what is queued, and for events alone what comes within ``linger``."""
        pending: list[_Pending[Any]] = _take_queued(self._queue, self._batch_max)
        if self._linger <= 0 or len(pending) >= _LINGER_BELOW or \
                any(item.result is not None for item in pending):
            return pending
        deadline = time.monotonic() + self._linger
        while len(pending) < _LINGER_BELOW:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else None
            except Empty:
                item = None
            if item is None:
                break
            pending.append(item)
            if item.result is not None:  # somebody waits for this one
                break
        return pending

    def _process(self, pending: list[_Pending[Any]]) -> None:
        unit = Unit(self, utcnow())
        outcomes: list[tuple[bool, Any]] = []
        self.turns.begin()
        for item in pending:
            # Operations change memory only through the journal, one at a time, so a
            # command greenlet may run between two of them (as it does during a write).
            self.turns.check()
            try:
                outcomes.append((True, item.op(unit)))
            except Exception as exc:  # an operation's own failure fails only its caller
                log.exception("journal operation failed")
                outcomes.append((False, exc))
        self.turns.check()
        try:
            ids = self._commit(unit)
        except (IntegrityError, DataError, StatementError):
            # Retrying cannot help a batch the database refuses; the journal must live on.
            log.exception("batch refused by the database; reloading the calls it touched")
            unit.post_commit.clear()
            self._forget(unit)
            error = StoreUnavailable("the database refused the batch")
            outcomes = [(False, error)] * len(pending)
            ids = []
        else:
            self._tell_usage(unit.batch)
        self._after_commit(unit, ids)
        for item, (ok, value) in zip(pending, outcomes, strict=True):
            if item.result is not None:
                item.result.set(value) if ok else item.result.set_exception(value)

    def _run_openings(self) -> None:
        while True:
            group: list[_Opening] = _take_queued(self._openings, self._batch_max)
            try:
                self._commit_openings(group)
            except Exception as exc:  # never let the opener die
                log.exception("opening new calls failed")
                for opening in group:
                    if not opening.result.ready():
                        opening.result.set_exception(exc)

    def _commit_openings(self, group: list[_Opening], judged: int = 0) -> None:
        """Write the group's units as one fresh batch; alone each, if one is refused."""
        batch = Batch()
        for opening in group:
            unit = opening.unit
            unit.batch.calls = [record.row(unit.now) for record in unit.touched.values()]
            for name in ("calls", "commands", "events", "cdrs", "outbox", "orders", "usage"):
                getattr(batch, name).extend(getattr(unit.batch, name))
        try:
            ids = self._write(batch, fresh=True) if not batch.is_empty() else []
        except (IntegrityError, DataError, StatementError) as exc:
            limit = refused_limit(exc) if isinstance(exc, IntegrityError) else None
            if limit is not None and self._judged(group, judged, limit):
                return
            if len(group) > 1:
                for opening in group:
                    self._commit_openings([opening])
                return
            refused = isinstance(exc, IntegrityError)
            if not refused:
                log.exception("new calls refused by the database")
            group[0].result.set_exception(
                AlreadyStored("a call id or command id of the batch is stored already")
                if refused
                else StoreUnavailable("the database refused the batch")
            )
            return
        for opening in group:
            for call_id, record in opening.unit.touched.items():
                if record.status not in TERMINAL:
                    self.calls[call_id] = record
        self._publish(batch, ids)
        self._tell_usage(batch)
        for opening in group:
            self._after_commit(opening.unit, [])
            opening.result.set(None)

    def _judged(self, group: list[_Opening], judged: int, limit: str) -> bool:
        """A group refused over a limit: refuse the calls the fresh counts refuse, write the rest.

        False when it cannot be judged (no judge, or judged too often: the counts move
        under it), and the calls are to be written alone instead.
        """
        if len(group) > 1 and (self.judge is None or judged >= _JUDGED_TRIES):
            return False
        if self.judge is None:
            group[0].result.set_exception(OverLimit(limit))
            return True
        verdicts = self.judge([opening.unit.batch.usage for opening in group], utcnow())
        admitted = []
        for opening, refusal in zip(group, verdicts, strict=True):
            if refusal is None:
                admitted.append(opening)
            else:
                opening.result.set_exception(OverLimit(refusal))
        if admitted and judged >= _JUDGED_TRIES:
            # Alone, and admitted by fresh counts, yet refused again and again: the counts
            # race with other nodes; the caller is told to retry in a moment.
            for opening in admitted:
                opening.result.set_exception(OverLimit(limit))
            return True
        if admitted:
            self._commit_openings(admitted, judged + 1)
        return True

    def _tell_usage(self, batch: Batch) -> None:
        if batch.usage:
            for watcher in self.usage_watchers:
                try:
                    watcher(batch.usage)
                except Exception:
                    log.exception("a usage watcher failed")

    def _commit(self, unit: Unit) -> list[int]:
        unit.batch.calls = [record.row(unit.now) for record in unit.touched.values()]
        if unit.batch.is_empty():
            return []
        return self._write(unit.batch)

    def _write(self, batch: Batch, *, fresh: bool = False) -> list[int]:
        """Write ``batch`` durably, retrying while the database is away; its outbox ids."""
        backoff = Backoff(0.05, 5.0)
        unanswered = False  # an attempt failed, perhaps after its commit
        while True:
            try:
                ids = self._attempt(batch, fresh=fresh, unanswered=unanswered)
                self.healthy = True
                self.batches += 1
                return ids
            except StoreUnavailable:
                unanswered = True
                if self.healthy:
                    log.warning("database unavailable; retrying the batch")
                self.healthy = False
                gevent.sleep(backoff.next())

    def _attempt(self, batch: Batch, *, fresh: bool, unanswered: bool) -> list[int]:
        if unanswered and batch_stored(self._engine, batch):
            return self._stored_unanswered()
        try:
            return write_batch(self._engine, batch, fresh=fresh)
        except IntegrityError:
            # Written again after a lost answer, a fresh batch collides with its own rows.
            if unanswered and batch_stored(self._engine, batch):
                return self._stored_unanswered()
            raise

    def _stored_unanswered(self) -> list[int]:
        log.warning("a batch whose commit went unanswered was stored; not writing it again")
        self._rescan()
        return []

    def _after_commit(self, unit: Unit, ids: list[int]) -> None:
        for action in unit.post_commit:
            try:
                action()
            except Exception:
                log.exception("post-commit action failed")
        for call_id, record in unit.touched.items():
            if record.status in TERMINAL:
                self.calls.pop(call_id, None)
        self._publish(unit.batch, ids)

    def _publish(self, batch: Batch, ids: list[int]) -> None:
        """Tell the relay of the batch's committed outbox rows."""
        if ids:
            items = [
                OutboxItem(
                    id=row_id,
                    exchange=row["exchange"],
                    routing_key=row["routing_key"],
                    body=row["body"],
                    message_id=row["message_id"],
                    correlation_id=row["correlation_id"],
                    headers=row["headers"],
                )
                for row_id, row in zip(ids, batch.outbox, strict=True)
            ]
            self._notify(items)

    def _forget(self, unit: Unit) -> None:
        for call_id in unit.touched:
            self.calls.pop(call_id, None)
        try:
            self.load()
            for reload in self.reloaders:
                reload()
        except StoreUnavailable:
            log.warning("could not reload live calls")

