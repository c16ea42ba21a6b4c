"""One /api/events response from a fake subscription: what the browser receives, and when it ends."""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from typing import Any

import pytest

from callworker.dashboard.live import EventStream
from callworker.errors import BrokerUnavailable


class FakeSubscription:
    """Hands out the events it was given, then None (or fails, when told to)."""

    def __init__(self, events: list[dict[str, Any]], fail_after: bool = False) -> None:
        self.events = deque(events)
        self.fail_after = fail_after
        self.waits = 0
        self.closed = False

    def next_event(self, timeout: float) -> dict[str, Any] | None:
        if self.events:
            return self.events.popleft()
        if self.fail_after:
            raise BrokerUnavailable("RabbitMQ connection lost")
        self.waits += 1
        return None

    def close(self) -> None:
        self.closed = True


def event(seq: int, event_id: str | None = None) -> dict[str, Any]:
    return {"v": 1, "event_id": event_id or f"e{seq}", "type": "call.ringing", "tenant": "acme", "seq": seq}


def test_the_stream_opens_with_the_retry_and_snapshot_then_one_message_per_event() -> None:
    subscription = FakeSubscription([event(1), event(2, event_id="bad\nid")])
    running = iter([True, True, True, False])
    stream = EventStream(subscription, {"calls": []}, still_allowed=lambda: True, running=lambda: next(running))
    chunks = list(stream)
    assert chunks[0] == b'retry: 1000\n\nevent: snapshot\ndata: {"calls":[]}\n\n'
    assert chunks[1].startswith(b"id: e1\ndata: {") and b'"seq":1' in chunks[1]
    assert chunks[2].startswith(b"data: {") and b'"seq":2' in chunks[2]  # an id a browser could not echo: none
    assert len(chunks) == 3 and subscription.closed


def test_a_quiet_stream_sends_keep_alives_and_ends_when_the_token_goes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("callworker.dashboard.live.KEEPALIVE_S", 0.0)
    allowed = iter([True, True, False])
    subscription = FakeSubscription([])
    stream = EventStream(subscription, {}, still_allowed=lambda: next(allowed), running=lambda: True)
    chunks = list(stream)
    assert chunks[1:] == [b": keep-alive\n\n", b": keep-alive\n\n"]
    assert subscription.closed


def test_a_lost_broker_ends_the_stream_so_the_browser_reconnects_for_a_fresh_snapshot() -> None:
    subscription = FakeSubscription([event(1)], fail_after=True)
    chunks = list(EventStream(subscription, {}, still_allowed=lambda: True, running=lambda: True))
    assert len(chunks) == 2 and subscription.closed


def test_a_client_that_goes_away_closes_the_subscription() -> None:
    subscription = FakeSubscription([event(1), event(2)])
    stream = EventStream(subscription, {}, still_allowed=lambda: True, running=lambda: True).__iter__()
    assert isinstance(stream, Generator)
    next(stream), next(stream)
    stream.close()  # what the WSGI server does when the socket is gone
    assert subscription.closed
