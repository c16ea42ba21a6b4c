"""FreeSWITCH events read but not yet taken: a bounded queue, then an overflow capped in bytes.

Strategy: the ESL reader must never wait. It is also the only place where replies
to commands are read, so a reader stalled behind a slow consumer (the journal,
when the database is slow or away) turns into api timeouts and connection resets,
and FreeSWITCH then throws away everything it had queued for the listener. So
``put`` never blocks. An event goes to the queue while the queue has room and
nothing waits in the overflow; otherwise to the overflow, whose size is counted in
the bytes FreeSWITCH sent. Events leave in the order they came, the overflow
refilling the queue as it empties.

Past the cap an event is dropped and counted. Near it, room is kept for the
events ``precious`` names (the hangups that carry the CDRs): the others are
dropped once the overflow holds more than the cap less a quarter. The first drop
is logged; when the consumer has then taken every event kept (the backlog is
cleared), the number dropped is logged and ``on_loss`` is called, once, so the
owner can repair what was lost: anything it asks FreeSWITCH from then on is
newer than every event dropped.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

import gevent.event
from gevent.queue import Empty

from callworker.esl.codec import Event

__all__ = ["EventBuffer"]

log = logging.getLogger("callworker.esl")

# Share of the cap kept for precious events.
_RESERVE = 0.25


class EventBuffer:
    """Events on their way from the ESL reader to one consumer; ``put`` never blocks."""

    def __init__(
        self,
        maxsize: int,
        overflow_cap: int,
        *,
        precious: Callable[[Event], bool] = lambda event: False,
        on_loss: Callable[[], None] | None = None,
    ) -> None:
        if maxsize < 1 or overflow_cap < 0:
            raise ValueError("the queue holds at least one event and the cap is not negative")
        self.maxsize = maxsize
        self.overflow_cap = overflow_cap
        self._ordinary_cap = int(overflow_cap * (1 - _RESERVE))
        self._precious = precious
        self.on_loss = on_loss
        self._queue: deque[Event] = deque()
        self._overflow: deque[tuple[Event, int]] = deque()
        self._nonempty = gevent.event.Event()
        self.overflow_bytes = 0
        self.overflow_peak_bytes = 0
        self.accepted = 0  # events put and kept
        self.overflowed = 0  # of those, events that went through the overflow
        self.dropped = 0
        self._dropped_at_loss: int | None = None  # dropped when this loss began (None: no loss)

    # ------------------------------------------------------------------ putting

    def put(self, event: Event, size: int = 0) -> bool:
        """Keep ``event`` (``size`` bytes as read), or drop it when over the cap; never blocks."""
        if not self._overflow and len(self._queue) < self.maxsize:
            self._queue.append(event)
            self.accepted += 1
            self._nonempty.set()
            return True
        cap = self.overflow_cap if self._precious(event) else self._ordinary_cap
        if self.overflow_bytes + size > cap:
            self._drop(event)
            return False
        self._overflow.append((event, size))
        self.overflow_bytes += size
        self.overflow_peak_bytes = max(self.overflow_peak_bytes, self.overflow_bytes)
        self.overflowed += 1
        self.accepted += 1
        return True

    def _drop(self, event: Event) -> None:
        self.dropped += 1
        if self._dropped_at_loss is not None:
            return
        self._dropped_at_loss = self.dropped - 1
        log.error(
            "FreeSWITCH events arrive faster than they are journalled: %d held, %d bytes beyond "
            "the queue (cap %d); dropping events (first: %s) until the backlog clears",
            self.qsize(), self.overflow_bytes, self.overflow_cap, event.name,
        )

    # ------------------------------------------------------------------ taking

    def get(self, timeout: float | None = None) -> Event:
        """The oldest event, waiting for one; gevent.queue.Empty after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._queue:
            self._nonempty.clear()
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise Empty
            self._nonempty.wait(remaining)
        event = self._queue.popleft()
        if self._overflow:
            moved, size = self._overflow.popleft()
            self.overflow_bytes -= size
            self._queue.append(moved)
        elif not self._queue:
            self._cleared()
        return event

    def _cleared(self) -> None:
        if self._dropped_at_loss is None:
            return
        log.warning("the FreeSWITCH event backlog is cleared; %d event(s) were dropped from it",
                    self.dropped - self._dropped_at_loss)
        self._dropped_at_loss = None
        if self.on_loss is not None:
            try:
                self.on_loss()
            except Exception:
                log.exception("on_loss callback failed")

    # ------------------------------------------------------------------ looking

    def qsize(self) -> int:
        """Events held: the queue and the overflow."""
        return len(self._queue) + len(self._overflow)

    def empty(self) -> bool:
        return not self._queue

    @property
    def overflow_events(self) -> int:
        return len(self._overflow)

    @property
    def losing(self) -> bool:
        """Events were dropped since the buffer was last empty."""
        return self._dropped_at_loss is not None
