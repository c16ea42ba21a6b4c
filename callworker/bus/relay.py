"""The outbox relay: publishes committed outbox rows in id order, then marks them sent.

Strategy: the database is the truth and memory a cache. Two greenlets share the
state, so that a database round trip holds up publishing only while a page is read.
The relay greenlet repeats a short cycle: notice a new broker connection, collect
confirms, publish from the buffer up to the free window (letting the hub poll its
sockets every few hundred publishes, so pika writes the frames out and the rest of
the worker runs), read one page when scanning, then sleep until woken (a notify, a
confirm, a deletion, a connection change, a timer). Confirmed ids go to a set; the
marker greenlet lets them gather for up to `mark_delay` (or until `mark_batch` are
waiting, or someone flushes), takes all of them, sorted, and marks them sent
(`mark_sent`, a page's worth per call), retrying with a backoff while that fails.
Marking is off every latency path, and one statement for many rows costs the
database far less than one per confirm; the price is that a crash republishes the
rows of the last `mark_delay` (consumers dedupe by message_id).

Items reach the buffer two ways, each row one way only. The fast path (`notify`)
appends rows the caller has just committed, ids ascending, above `cursor` (the
highest id taken into memory). A scan reads `fetch_pending(cursor, ...)` page by page
and ignores notifications above the cursor meanwhile (those rows are committed, so
the scan finds them); it ends with a short page once every id notified during it is
behind the cursor. Two writers commit (new calls beside the journal's batches), so a
row may be committed, and notified, after a later id: one notified behind the cursor
and not held is appended as it is, since no scan from the cursor would find it. The
ids marked sent most recently are remembered (`_MARKED_MEMORY`), so a row a scan
read, published and marked before its notify came is not published again.

A scan starts on every broker (re)connection from id 0 with in-flight items
forgotten, after a nack from just before the nacked id, when the buffer would
overflow from the cursor, from 0 on ``rescan`` (rows committed but not notified),
and from 0 as a safety net when idle for a while. Rows buffered, in flight or
confirmed but not yet marked are skipped while scanning, and so are rows marked
while the page was being read (the page may predate that), so a healthy run
publishes each row once; failures may publish a row again (consumers
dedupe by message_id) but never leave one behind.

Memory: buffered items, items in flight and confirmed ids not yet marked together
stay within `buffer_limit`. While marking keeps failing the confirmed ids fill that
room and the relay stops taking rows in (they wait in the database) instead of
growing. A page is read once a whole page fits, or sooner when less than a window
is left to publish.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import gevent
import gevent.event

from callworker.backoff import Backoff
from callworker.bus.client import AmqpClient
from callworker.errors import BrokerUnavailable
from callworker.turns import let_the_hub_poll

__all__ = ["OutboxItem", "OutboxRelay"]

log = logging.getLogger("callworker.bus")

_PUBLISHES_PER_YIELD = 200  # publishes between two chances for the hub to write them out
# Ids marked sent that a late notify must not bring back: ~10 s of rows at 300 calls/s.
_MARKED_MEMORY = 20_000


@dataclass(frozen=True)
class OutboxItem:
    """One committed outbox row."""

    id: int
    exchange: str
    routing_key: str
    body: bytes
    message_id: str | None
    correlation_id: str | None
    headers: dict[str, Any] | None


class OutboxRelay:
    """At-least-once, in-order publishing of outbox rows with bounded memory."""

    def __init__(self, client: AmqpClient, *,
                 fetch_pending: Callable[[int, int], list[OutboxItem]],
                 mark_sent: Callable[[list[int]], None], window: int = 1000,
                 buffer_limit: int = 50000, page_size: int = 5000,
                 safety_interval: float = 5.0, mark_delay: float = 0.1,
                 mark_batch: int = 1000) -> None:
        self._client = client
        self._fetch = fetch_pending
        self._mark_sent = mark_sent
        self._window = window
        self._buffer_limit = max(buffer_limit, 1)
        self._page_size = page_size
        self._safety_interval = safety_interval
        self._mark_delay = mark_delay
        self._mark_batch = mark_batch
        self._buffer: deque[OutboxItem] = deque()
        self._queued: set[int] = set()  # the ids in the buffer
        self._inflight: dict[int, OutboxItem] = {}
        self._done: deque[tuple[int | None, int, bool]] = deque()  # generation, id, confirmed
        self._unmarked: set[int] = set()  # confirmed, not yet marked sent
        self._marked_order: deque[int] = deque()  # the last ids marked sent, oldest first
        self._marked_ids: set[int] = set()
        self._reading = False  # a page read is under way
        self._marked_during_read: set[int] = set()
        self._cursor = 0
        self._scanning = True
        self._notified_max = 0  # highest id notified while the current page was read
        self._generation: int | None = None
        self._last_scan = time.monotonic()
        self._mark_backoff = Backoff(0.05, 5.0)
        self._fetch_backoff, self._fetch_at = Backoff(0.05, 5.0), 0.0
        self._wake = gevent.event.Event()
        self._mark_wake = gevent.event.Event()
        self._mark_now = gevent.event.Event()  # stop gathering confirms: mark what is there
        self._flushing = 0  # callers waiting in flush: mark without gathering
        self._drained = gevent.event.Event()
        self._greenlet: gevent.Greenlet | None = None
        self._marker: gevent.Greenlet | None = None
        client.add_listener(on_ready=self._wake.set, on_lost=self._wake.set)

    # ----- public surface -------------------------------------------------------

    def start(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)
            self._marker = gevent.spawn(self._run_marker)

    def notify(self, items: list[OutboxItem]) -> None:
        """Rows just committed, ids ascending per call. Never blocks; any greenlet."""
        for item in items:
            if item.id in self._queued or item.id in self._inflight or item.id in self._unmarked \
                    or item.id in self._marked_ids:
                continue  # a scan took it first, or it was told before
            if item.id > self._cursor:
                if not self._scanning:
                    if self._held() < self._buffer_limit:
                        self._enqueue(item)
                        self._cursor = item.id
                        continue
                    log.debug("outbox buffer full (%d); reading from the database", self._held())
                    self._start_scan(self._cursor)
                self._notified_max = max(self._notified_max, item.id)
            elif self._held() < self._buffer_limit:
                self._enqueue(item)  # committed after a later id: behind every scan
            else:
                self._start_scan(item.id - 1)
        self._drained.clear()
        self._wake.set()

    def rescan(self) -> None:
        """Read from the database committed rows that no notify brings. Any greenlet.

        For a batch found stored after its commit went unanswered. Its rows may lie
        behind the cursor (a second writer committed later ids meanwhile), so the
        scan starts from the first row: rows held are skipped, the rest come in id
        order, before anything committed later.
        """
        self._start_scan(0)
        self._wake.set()

    def flush(self, timeout: float) -> bool:
        """True once everything known has been confirmed and marked sent."""
        deadline = time.monotonic() + timeout
        self._flushing += 1
        self._mark_now.set()
        self._wake.set()
        try:
            return self._wait_drained(deadline)
        finally:
            self._flushing -= 1

    def _wait_drained(self, deadline: float) -> bool:
        while True:
            remaining = deadline - time.monotonic()
            if self._drained.wait(max(0.0, remaining)) and self._is_drained():
                return True
            if remaining <= 0:
                return False
            self._drained.clear()  # stale: wait for the relay to set it again

    def stop(self, timeout: float = 10.0) -> None:
        """Flush (up to timeout), then stop publishing and marking."""
        self.flush(timeout)
        running = [greenlet for greenlet in (self._greenlet, self._marker) if greenlet is not None]
        gevent.killall(running, block=True, timeout=1.0)
        self._greenlet = self._marker = None

    @property
    def backlog(self) -> int:
        """Rows known and not yet marked sent (buffered, in flight, confirmed)."""
        return len(self._buffer) + len(self._inflight) + len(self._unmarked)

    @property
    def held(self) -> int:
        """Rows held in memory (buffered, in flight, confirmed); never above buffer_limit."""
        return self._held()

    # ----- the publishing cycle -----------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                self._cycle()
            except Exception:
                log.exception("outbox relay cycle failed; retrying")
                gevent.sleep(1.0)

    def _cycle(self) -> None:
        self._wake.clear()
        self._follow_connection()
        self._collect()
        self._publish()
        self._scan_page()  # while the window just published is being confirmed
        if self._is_drained():
            self._drained.set()
        if self._can_proceed():
            let_the_hub_poll()
            return
        self._wake.wait(self._idle_timeout())
        if not self._scanning and not self._buffer and \
                time.monotonic() - self._last_scan >= self._safety_interval:
            self._start_scan(0)

    def _follow_connection(self) -> None:
        """A new broker connection: forget in-flight items and read everything again."""
        generation = self._client.generation
        if self._client.ready and generation != self._generation:
            self._generation = generation
            self._inflight.clear()
            self._start_scan(0)

    def _collect(self) -> None:
        first_failed: int | None = None
        while self._done:
            generation, item_id, confirmed = self._done.popleft()
            if confirmed:
                self._unmarked.add(item_id)
                self._mark_wake.set()
                if len(self._unmarked) >= self._mark_batch:
                    self._mark_now.set()
            if generation != self._generation:
                continue  # forgotten when that connection ended
            self._inflight.pop(item_id, None)
            if not confirmed and (first_failed is None or item_id < first_failed):
                first_failed = item_id
        if first_failed is not None:
            log.warning("outbox row %d not confirmed; publishing again", first_failed)
            self._start_scan(first_failed - 1)

    def _scan_page(self) -> None:
        room = self._page_room()
        if not self._scanning or room <= 0 or time.monotonic() < self._fetch_at:
            return
        self._notified_max = 0
        page = self._read_page(room)
        if page is None:
            return
        rows, marked_meanwhile = page
        for row in rows:
            if row.id <= self._cursor:
                continue
            self._cursor = row.id
            if row.id not in self._inflight and row.id not in self._unmarked and \
                    row.id not in marked_meanwhile and row.id not in self._queued:
                self._enqueue(row)
        # A short page read after a notify holds that row; one read meanwhile may not.
        if len(rows) < room and self._notified_max <= self._cursor:
            self._scanning = False
            self._last_scan = time.monotonic()

    def _read_page(self, limit: int) -> tuple[list[OutboxItem], set[int]] | None:
        """Rows after the cursor and the ids marked sent meanwhile; None if reading failed."""
        self._reading = True
        try:
            rows = self._fetch(self._cursor, limit)
        except Exception as exc:  # noqa: BLE001 - whatever the store raises, retry later
            delay = self._fetch_backoff.next()
            log.warning("reading the outbox failed (%r); retry in %.2f s", exc, delay)
            self._fetch_at = time.monotonic() + delay
            return None
        finally:
            self._reading = False
            marked_meanwhile, self._marked_during_read = self._marked_during_read, set()
        self._fetch_backoff.reset()
        return rows, marked_meanwhile

    def _publish(self) -> None:
        """Publish up to the free window, letting the hub poll every few hundred."""
        published = 0
        while self._can_publish():
            if not self._publish_first():
                return  # woken again when a connection is ready
            published += 1
            if published % _PUBLISHES_PER_YIELD == 0:
                let_the_hub_poll()

    def _publish_first(self) -> bool:
        """Publish the first buffered item; False when the broker is unavailable."""
        item = self._buffer[0]
        try:
            result = self._client.publish(
                item.exchange, item.routing_key, item.body, message_id=item.message_id,
                correlation_id=item.correlation_id, headers=item.headers,
                generation=self._generation)
        except BrokerUnavailable:
            return False
        # Only this greenlet takes from the left; a rescan started while publish waited
        # for a slot may have emptied the buffer, and the scan skips what is in flight.
        if self._buffer and self._buffer[0] is item:
            self._queued.discard(self._buffer.popleft().id)
        self._inflight[item.id] = item
        result.rawlink(partial(self._on_result, self._generation, item.id))
        return True

    def _on_result(self, generation: int | None, item_id: int, result: Any) -> None:
        """Hub greenlet: record the outcome, the relay greenlet handles it."""
        self._done.append((generation, item_id, result.successful()))
        self._wake.set()

    # ----- the marker ---------------------------------------------------------------

    def _run_marker(self) -> None:
        while True:
            self._mark_wake.wait()
            self._mark_wake.clear()
            if not self._flushing:
                self._mark_now.wait(self._mark_delay)
            self._mark_now.clear()
            try:
                self._mark_confirmed()
            except Exception as exc:  # noqa: BLE001 - whatever the store raises, retry later
                delay = self._mark_backoff.next()
                log.warning("marking %d outbox rows sent failed (%r); retry in %.2f s",
                            len(self._unmarked), exc, delay)
                gevent.sleep(delay)
                self._mark_wake.set()
            else:
                self._mark_backoff.reset()

    def _mark_confirmed(self) -> None:
        """Mark everything confirmed so far; ids confirmed meanwhile wait for the next round."""
        ids = sorted(self._unmarked)
        for start in range(0, len(ids), self._page_size):
            chunk = ids[start:start + self._page_size]
            self._mark_sent(chunk)
            self._forget_marked(chunk)

    def _forget_marked(self, ids: list[int]) -> None:
        self._unmarked.difference_update(ids)
        self._marked_order.extend(ids)
        self._marked_ids.update(ids)
        while len(self._marked_order) > _MARKED_MEMORY:
            self._marked_ids.discard(self._marked_order.popleft())
        if self._reading:  # the page being read may hold them still
            self._marked_during_read.update(ids)
        self._wake.set()  # room for more rows, perhaps drained

    # ----- helpers ------------------------------------------------------------------

    def _enqueue(self, item: OutboxItem) -> None:
        self._buffer.append(item)
        self._queued.add(item.id)

    def _start_scan(self, after_id: int) -> None:
        """Read from ``after_id`` on; buffered rows after it are dropped (the scan reads them)."""
        self._cursor = min(self._cursor, after_id)
        if any(item.id > self._cursor for item in self._buffer):
            self._buffer = deque(item for item in self._buffer if item.id <= self._cursor)
            self._queued = {item.id for item in self._buffer}
        self._scanning = True
        self._drained.clear()

    def _held(self) -> int:
        return len(self._buffer) + len(self._inflight) + len(self._unmarked)

    def _page_room(self) -> int:
        """Rows to read now: a whole page once it fits, less only when the buffer runs low."""
        room = min(self._page_size, self._buffer_limit - self._held())
        if room < self._page_size and len(self._buffer) >= self._window:
            return 0  # enough to publish meanwhile: fewer, larger reads
        return max(room, 0)

    def _can_publish(self) -> bool:
        return bool(self._buffer) and len(self._inflight) < self._window and \
            self._client.ready and self._client.generation == self._generation

    def _is_drained(self) -> bool:
        return not (self._scanning or self._buffer or self._inflight or self._unmarked
                    or self._done)

    def _can_proceed(self) -> bool:
        """Work that needs no waiting: confirms to collect, a page to read, items to publish."""
        if self._done:
            return True
        if self._scanning and self._page_room() > 0 and time.monotonic() >= self._fetch_at:
            return True
        return self._can_publish()

    def _idle_timeout(self) -> float | None:
        """Until the next retry or safety scan is due; None: until woken."""
        deadlines = []
        if not self._scanning and not self._buffer:
            deadlines.append(self._last_scan + self._safety_interval)
        if self._scanning and self._fetch_at > time.monotonic():
            deadlines.append(self._fetch_at)
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
