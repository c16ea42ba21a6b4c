"""The outbox relay: publishes committed outbox rows in id order, then marks them sent.

Strategy: the database is the truth and memory a cache. One greenlet owns all state
and repeats a short cycle: notice a new broker connection, collect confirms, mark
confirmed ids sent, read one page when scanning, publish from the buffer within the
window, then sleep until woken (a notify, a confirm, a connection change, a timer).

Items reach the buffer two ways, never both at once. The fast path (`notify`)
appends rows the caller has just committed, ids ascending, above `cursor` (the
highest id taken into memory). A scan reads `fetch_pending(cursor, ...)` page by page
and ignores notifications meanwhile (those rows are committed, so the scan finds
them); it ends with a short page once every id notified during it is behind the
cursor. A scan starts on every broker (re)connection from id 0 with in-flight items
forgotten, after a nack from just before the nacked id, when the buffer would
overflow from the cursor, and from 0 as a safety net when idle for a while. Rows
already in flight or confirmed but not yet marked are skipped while scanning, so a
healthy run publishes each row once; failures may publish a row again
(consumers dedupe by message_id) but never leave one behind.
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

from callworker.bus.client import AmqpClient, Backoff
from callworker.errors import BrokerUnavailable

__all__ = ["OutboxItem", "OutboxRelay"]

log = logging.getLogger("callworker.bus")

_PUBLISH_BURST = 500  # publishes per cycle before letting the hub write them out


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
                 buffer_limit: int = 50000, page_size: int = 1000,
                 safety_interval: float = 5.0) -> None:
        self._client = client
        self._fetch = fetch_pending
        self._mark_sent = mark_sent
        self._window = window
        self._buffer_limit = max(buffer_limit, 1)
        self._page_size = page_size
        self._safety_interval = safety_interval
        self._buffer: deque[OutboxItem] = deque()
        self._inflight: dict[int, OutboxItem] = {}
        self._done: deque[tuple[int | None, int, bool]] = deque()  # generation, id, confirmed
        self._unmarked: set[int] = set()
        self._cursor = 0
        self._scanning = True
        self._notified_max = 0  # highest id notified while the current page was read
        self._generation: int | None = None
        self._last_scan = time.monotonic()
        self._mark_backoff, self._mark_at = Backoff(0.05, 5.0), 0.0
        self._fetch_backoff, self._fetch_at = Backoff(0.05, 5.0), 0.0
        self._wake = gevent.event.Event()
        self._drained = gevent.event.Event()
        self._greenlet: gevent.Greenlet | None = None
        client.add_listener(on_ready=self._wake.set, on_lost=self._wake.set)

    # ----- public surface -------------------------------------------------------

    def start(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def notify(self, items: list[OutboxItem]) -> None:
        """Rows just committed, ids ascending. Never blocks; any greenlet."""
        for item in items:
            if not self._scanning and item.id > self._cursor:
                if self._held() < self._buffer_limit:
                    self._buffer.append(item)
                    self._cursor = item.id
                    continue
                log.debug("outbox buffer full (%d); reading from the database", self._held())
                self._start_scan(self._cursor)
            elif not self._scanning and item.id not in self._inflight:
                # Committed out of id order (not by the single writer): read it back.
                log.debug("outbox row %d notified behind the cursor; rescanning", item.id)
                self._start_scan(item.id - 1)
            if self._scanning:
                self._notified_max = max(self._notified_max, item.id)
        self._drained.clear()
        self._wake.set()

    def flush(self, timeout: float) -> bool:
        """True once everything known has been confirmed and marked sent."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        while True:
            remaining = deadline - time.monotonic()
            if self._drained.wait(max(0.0, remaining)) and self._is_drained():
                return True
            if remaining <= 0:
                return False
            self._drained.clear()  # stale: wait for the relay to set it again

    def stop(self, timeout: float = 10.0) -> None:
        self.flush(timeout)
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=1.0)
            self._greenlet = None

    @property
    def backlog(self) -> int:
        """Rows known and not yet marked sent (buffered, in flight, confirmed)."""
        return len(self._buffer) + len(self._inflight) + len(self._unmarked)

    @property
    def held(self) -> int:
        """Rows held in memory; never above buffer_limit."""
        return self._held()

    # ----- the cycle --------------------------------------------------------------

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
        self._mark()
        self._scan_page()
        self._publish()
        if self._is_drained():
            self._drained.set()
        if self._can_proceed():
            gevent.sleep(0)
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
            if generation != self._generation:
                continue  # forgotten when that connection ended
            self._inflight.pop(item_id, None)
            if not confirmed and (first_failed is None or item_id < first_failed):
                first_failed = item_id
        if first_failed is not None:
            log.warning("outbox row %d not confirmed; publishing again", first_failed)
            self._start_scan(first_failed - 1)

    def _mark(self) -> None:
        if not self._unmarked or time.monotonic() < self._mark_at:
            return
        ids = sorted(self._unmarked)
        for start in range(0, len(ids), self._page_size):
            chunk = ids[start:start + self._page_size]
            try:
                self._mark_sent(chunk)
            except Exception as exc:  # noqa: BLE001 - whatever the store raises, retry later
                delay = self._mark_backoff.next()
                log.warning("marking %d outbox rows sent failed (%r); retry in %.2f s",
                            len(chunk), exc, delay)
                self._mark_at = time.monotonic() + delay
                return
            self._unmarked.difference_update(chunk)
        self._mark_backoff.reset()

    def _scan_page(self) -> None:
        room = min(self._page_size, self._buffer_limit - self._held())
        if not self._scanning or room <= 0 or time.monotonic() < self._fetch_at:
            return
        self._notified_max = 0
        try:
            rows = self._fetch(self._cursor, room)
        except Exception as exc:  # noqa: BLE001 - whatever the store raises, retry later
            delay = self._fetch_backoff.next()
            log.warning("reading the outbox failed (%r); retry in %.2f s", exc, delay)
            self._fetch_at = time.monotonic() + delay
            return
        self._fetch_backoff.reset()
        for row in rows:
            if row.id <= self._cursor:
                continue
            self._cursor = row.id
            if row.id not in self._inflight and row.id not in self._unmarked:
                self._buffer.append(row)
        # A short page read after a notify holds that row; one read meanwhile may not.
        if len(rows) < room and self._notified_max <= self._cursor:
            self._scanning = False
            self._last_scan = time.monotonic()

    def _publish(self) -> None:
        if not self._client.ready or self._client.generation != self._generation:
            return
        for _ in range(_PUBLISH_BURST):
            if not self._buffer or len(self._inflight) >= self._window:
                return
            item = self._buffer[0]
            try:
                result = self._client.publish(
                    item.exchange, item.routing_key, item.body, message_id=item.message_id,
                    correlation_id=item.correlation_id, headers=item.headers,
                    generation=self._generation)
            except BrokerUnavailable:
                return  # woken again when a connection is ready
            # Only this greenlet takes from the left, so buffer[0] is still `item`.
            self._buffer.popleft()
            self._inflight[item.id] = item
            result.rawlink(partial(self._on_result, self._generation, item.id))

    def _on_result(self, generation: int | None, item_id: int, result: Any) -> None:
        """Hub greenlet: record the outcome, the relay greenlet handles it."""
        self._done.append((generation, item_id, result.successful()))
        self._wake.set()

    # ----- helpers ------------------------------------------------------------------

    def _start_scan(self, after_id: int) -> None:
        self._cursor = min(self._cursor, after_id)
        while self._buffer and self._buffer[-1].id > self._cursor:
            self._buffer.pop()
        self._scanning = True
        self._drained.clear()

    def _held(self) -> int:
        return len(self._buffer) + len(self._inflight)

    def _is_drained(self) -> bool:
        return not (self._scanning or self._buffer or self._inflight or self._unmarked
                    or self._done)

    def _can_proceed(self) -> bool:
        """Work that needs no waiting: ids to mark, a page to read, items to publish."""
        now = time.monotonic()
        if (self._unmarked and now >= self._mark_at) or self._done:
            return True
        if self._scanning and self._held() < self._buffer_limit and now >= self._fetch_at:
            return True
        return bool(self._buffer) and len(self._inflight) < self._window and \
            self._client.ready and self._client.generation == self._generation

    def _idle_timeout(self) -> float | None:
        """Until the next retry or safety scan is due; None: until woken."""
        deadlines = []
        if not self._scanning and not self._buffer:
            deadlines.append(self._last_scan + self._safety_interval)
        if self._unmarked:
            deadlines.append(self._mark_at)
        if self._scanning and self._fetch_at > time.monotonic():
            deadlines.append(self._fetch_at)
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
