"""The live picture: a snapshot from the database, then the events as the broker delivers them.

Strategy: each ``/api/events`` stream gets its own server-named, exclusive queue on
``callworker.events``, bound with the viewer's routing key (``<tenant>.#``, or ``#``
for the operator): the broker does the tenant filtering, and the queue goes with
the stream. The queue is bound *before* the snapshot is read, so nothing between
the two is lost; the page applies an event only when its ``seq`` is newer than
what it holds for that call, so nothing is applied twice either. Every (re)connect
starts with a fresh snapshot (calls up now and the 15-minute history), which is
the catch-up after a gap: the browser reconnects by itself (``retry``) and sends
``Last-Event-ID``; the snapshot it gets makes the event it stopped at irrelevant.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from callworker.dashboard.sse import comment, message, retry
from callworker.errors import BrokerUnavailable

__all__ = ["KEEPALIVE_S", "EventStream", "Subscription"]

log = logging.getLogger("callworker.dashboard")

# How long a stream stays quiet before a keep-alive comment; how often it looks at its token again.
KEEPALIVE_S = 10.0
_RETRY_MS = 1000


class Subscription(Protocol):
    """A queue bound on ``callworker.events`` (``bus.upstream.Upstream``): events as they come."""

    def next_event(self, timeout: float) -> dict[str, Any] | None: ...

    def close(self) -> None: ...


def _event_id(event: dict[str, Any]) -> str | None:
    """The event's ``event_id`` as the SSE id, when it is one a browser can send back."""
    value = event.get("event_id")
    if isinstance(value, str) and value.isprintable() and len(value) <= 64:
        return value
    return None


class EventStream:
    """One ``/api/events`` response: subscribe, snapshot, then events until the client goes.

    ``subscription`` was bound before ``first`` (the snapshot) was read. ``still_allowed``
    is asked every few seconds: a token taken out of the policy ends its streams;
    ``running`` twice a second: a worker stopping ends them all. The subscription is
    closed when the stream ends, however it ends.
    """

    def __init__(self, subscription: Subscription, first: dict[str, Any], *,
                 still_allowed: Callable[[], bool], running: Callable[[], bool]) -> None:
        self._upstream = subscription
        self._first = first
        self._still_allowed = still_allowed
        self._running = running

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield retry(_RETRY_MS) + message(self._first, event="snapshot")
            quiet_since = next_check = time.monotonic()
            while self._running():
                event = self._upstream.next_event(0.5)
                if time.monotonic() - next_check >= KEEPALIVE_S:
                    if not self._still_allowed():
                        return
                    next_check = time.monotonic()
                if event is not None:
                    yield message(event, event_id=_event_id(event))
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since >= KEEPALIVE_S:
                    yield comment("keep-alive")
                    quiet_since = time.monotonic()
        except BrokerUnavailable as exc:
            log.warning("a dashboard event stream ended: %s", exc)
        finally:
            self._upstream.close()
