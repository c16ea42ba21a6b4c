"""Taking turns on the gevent hub: long stretches of work let the others in.

Greenlets switch only when one waits. A greenlet that computes for a few
milliseconds (the journal running a batch of FreeSWITCH events) holds back
everything else for that long, the command that was just delivered included;
measured at 100 calls/s, a third of the commands waited ~1.6 ms for the journal
before their greenlet ran. Such loops check a `Turns` between items.
"""

from __future__ import annotations

import time

import gevent

__all__ = ["Turns", "let_the_hub_poll"]


def let_the_hub_poll() -> None:
    """Return once the hub has polled its sockets.

    gevent.sleep(0) only runs greenlets that are runnable already and may return
    before the loop polls anything; an expired timer is served after the poll, in
    which pika writes out the frames queued so far and other sockets are read.
    """
    hub = gevent.get_hub()
    with hub.loop.timer(0) as timer:
        hub.wait(timer)


class Turns:
    """Lets the hub poll once the current stretch of work has run ``slice_s``."""

    def __init__(self, slice_s: float) -> None:
        self._slice_s = slice_s
        self._since = time.perf_counter()
        self.given = 0  # how often the hub was let in

    def begin(self) -> None:
        """A stretch of work starts (the greenlet has just been waiting)."""
        self._since = time.perf_counter()

    def check(self) -> None:
        """Between two items: let the others in if this stretch has run its slice."""
        now = time.perf_counter()
        if now - self._since >= self._slice_s:
            let_the_hub_poll()
            self.given += 1
            self._since = time.perf_counter()
