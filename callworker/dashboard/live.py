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
from bisect import bisect_right
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from callworker.bus.upstream import Upstream
from callworker.contract import to_iso, utcnow
from callworker.contract.events import call_snapshot
from callworker.dashboard.auth import Viewer
from callworker.dashboard.sse import comment, message, retry
from callworker.errors import BrokerUnavailable
from callworker.store.dashboard import call_times, calls_up

__all__ = ["BUCKET_S", "KEEPALIVE_S", "WINDOW_S", "EventStream", "history", "snapshot"]

log = logging.getLogger("callworker.dashboard")

BUCKET_S = 5
WINDOW_S = 15 * 60
# How long a stream stays quiet before a keep-alive comment; how often it looks at its token again.
KEEPALIVE_S = 10.0
_RETRY_MS = 1000
# Calls that started this long before the window and ended inside it still count as concurrent.
_LONGEST_CALL = timedelta(hours=2)


def history(times: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """Calls started per bucket and calls up at each bucket's end, over the last 15 minutes."""
    count = WINDOW_S // BUCKET_S
    start = now - timedelta(seconds=WINDOW_S)
    initiated = [0] * count
    begins = sorted(row["initiated_at"] for row in times if row["initiated_at"] is not None)
    ends = sorted(row["ended_at"] for row in times if row["initiated_at"] is not None and row["ended_at"] is not None)
    for began in begins:
        offset = (began - start).total_seconds()
        if 0 <= offset < WINDOW_S:
            initiated[int(offset // BUCKET_S)] += 1
    concurrent = []
    for i in range(count):
        end = start + timedelta(seconds=BUCKET_S * (i + 1))
        concurrent.append(bisect_right(begins, end) - bisect_right(ends, end))
    return {"start": to_iso(start), "bucket_s": BUCKET_S, "initiated": initiated, "concurrent": concurrent}


def snapshot(engine: Engine, viewer: Viewer, tenants: list[str]) -> dict[str, Any]:
    """What the page shows before any event: the calls up now and the 15-minute history."""
    now = utcnow()
    calls = []
    for row in calls_up(engine, viewer.tenant):
        call = call_snapshot(row, now=now)
        call.update(tenant=row["tenant"], seq=row["last_seq"])
        calls.append(call)
    times = call_times(engine, viewer.tenant, now - timedelta(seconds=WINDOW_S) - _LONGEST_CALL)
    return {
        "now": to_iso(now),
        "viewer": {"tenant": viewer.tenant, "admin": viewer.admin, "tenants": tenants if viewer.admin else []},
        "calls": calls,
        "history": history(times, now),
    }


def _event_id(event: dict[str, Any]) -> str | None:
    """The event's ``event_id`` as the SSE id, when it is one a browser can send back."""
    value = event.get("event_id")
    if isinstance(value, str) and value.isprintable() and len(value) <= 64:
        return value
    return None


class EventStream:
    """One ``/api/events`` response: subscribe, snapshot, then events until the client goes.

    ``still_allowed`` is asked every few seconds: a token taken out of the policy ends
    its streams; ``running`` twice a second: a worker stopping ends them all. Raises
    BrokerUnavailable (or StoreUnavailable) before the first byte when the stream
    cannot start, so the caller can answer 503 instead.
    """

    def __init__(self, amqp_url: str, engine: Engine, viewer: Viewer, *, tenants: list[str],
                 still_allowed: Callable[[], bool], running: Callable[[], bool]) -> None:
        self._still_allowed = still_allowed
        self._running = running
        self._upstream = Upstream(amqp_url, bindings=[viewer.binding])
        try:
            self._first = snapshot(engine, viewer, tenants)
        except BaseException:
            self._upstream.close()
            raise

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
