"""OutboxRelay decisions with a scripted broker: nacks, reconnects, window, ordering."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, cast

import gevent
import gevent.event
import pytest

from callworker.bus.client import AmqpClient
from callworker.bus.relay import OutboxItem, OutboxRelay
from callworker.errors import BrokerUnavailable, PublishFailed


class ScriptedBroker:
    """Stands in for AmqpClient: records publishes; confirms when and how the test says."""

    def __init__(self, *, auto_confirm: bool = True) -> None:
        self.ready = True
        self.generation = 1
        self.auto_confirm = auto_confirm
        self.nack_once: set[int] = set()
        self.published: list[int] = []
        self.pending: dict[int, gevent.event.AsyncResult] = {}
        self.on_publish: Callable[[], None] = lambda: None
        self._changed = gevent.event.Event()
        self._on_ready: list[Callable[[], None]] = []
        self._on_lost: list[Callable[[], None]] = []

    def add_listener(self, on_ready: Callable[[], None] | None = None,
                     on_lost: Callable[[], None] | None = None) -> None:
        if on_ready:
            self._on_ready.append(on_ready)
        if on_lost:
            self._on_lost.append(on_lost)

    def publish(self, exchange: str, routing_key: str, body: bytes, **props: Any) -> Any:
        if not self.ready or props.get("generation") not in (None, self.generation):
            raise BrokerUnavailable("down")
        item_id = int(props["message_id"])
        self.published.append(item_id)
        self.on_publish()
        self._changed.set()
        result = gevent.event.AsyncResult()
        if item_id in self.nack_once:
            self.nack_once.discard(item_id)
            gevent.spawn(result.set_exception, PublishFailed("nack"))
        elif self.auto_confirm:
            gevent.spawn(result.set, True)
        else:
            self.pending[item_id] = result
        return result

    def wait_published(self, count: int, timeout: float = 5.0) -> bool:
        """True once `count` publishes happened; False after `timeout` s without them."""
        with gevent.Timeout(timeout, False):
            while len(self.published) < count:
                self._changed.clear()
                self._changed.wait()
        return len(self.published) >= count

    def confirm_all(self) -> None:
        for result in self.pending.values():
            result.set(True)
        self.pending.clear()

    def drop_connection(self) -> None:
        self.ready = False
        for result in self.pending.values():
            result.set_exception(PublishFailed("connection lost"))
        self.pending.clear()
        for listener in self._on_lost:
            listener()

    def reconnect(self) -> None:
        self.generation += 1
        self.ready = True
        for listener in self._on_ready:
            listener()


class Outbox:
    def __init__(self) -> None:
        self.rows: dict[int, OutboxItem] = {}
        self.next_id = 1
        self.fetch_failures = 0

    def commit(self, count: int) -> list[OutboxItem]:
        items = [OutboxItem(id=i, exchange="callworker.events", routing_key="k", body=b"{}",
                            message_id=str(i), correlation_id=None, headers=None)
                 for i in range(self.next_id, self.next_id + count)]
        self.next_id += count
        self.rows.update((item.id, item) for item in items)
        return items

    def fetch_pending(self, after_id: int, limit: int) -> list[OutboxItem]:
        if self.fetch_failures:
            self.fetch_failures -= 1
            raise RuntimeError("database unavailable")
        return [self.rows[i] for i in sorted(i for i in self.rows if i > after_id)[:limit]]

    def mark_sent(self, ids: list[int]) -> None:
        for item_id in ids:
            del self.rows[item_id]


@pytest.fixture
def relays() -> Iterator[list[OutboxRelay]]:
    made: list[OutboxRelay] = []
    yield made
    for relay in made:
        relay.stop(timeout=0.5)


def start(relays: list[OutboxRelay], broker: ScriptedBroker, outbox: Outbox,
          **options: Any) -> OutboxRelay:
    relay = OutboxRelay(cast(AmqpClient, broker), fetch_pending=outbox.fetch_pending,
                        mark_sent=outbox.mark_sent, **options)
    relays.append(relay)
    relay.start()
    return relay


def firsts(ids: list[int]) -> list[int]:
    return list(dict.fromkeys(ids))


def test_a_nacked_row_is_published_again(relays: list[OutboxRelay]) -> None:
    broker, outbox = ScriptedBroker(), Outbox()
    broker.nack_once = {7}
    relay = start(relays, broker, outbox)
    relay.notify(outbox.commit(20))
    assert relay.flush(5)
    assert outbox.rows == {}
    assert broker.published.count(7) == 2
    assert firsts(broker.published) == list(range(1, 21))


def test_after_a_reconnect_every_unconfirmed_row_is_published_again(
        relays: list[OutboxRelay]) -> None:
    broker, outbox = ScriptedBroker(auto_confirm=False), Outbox()
    relay = start(relays, broker, outbox)
    relay.notify(outbox.commit(10))
    assert not relay.flush(0.2)
    assert broker.published == list(range(1, 11))

    broker.drop_connection()
    relay.notify(outbox.commit(5))  # committed while the broker is away
    broker.auto_confirm = True
    broker.reconnect()
    assert relay.flush(5)
    assert broker.published == list(range(1, 11)) + list(range(1, 16))
    assert outbox.rows == {}


def test_no_more_than_window_rows_are_unconfirmed(relays: list[OutboxRelay]) -> None:
    broker, outbox = ScriptedBroker(auto_confirm=False), Outbox()
    relay = start(relays, broker, outbox, window=8)
    relay.notify(outbox.commit(30))
    assert broker.wait_published(8)
    assert not broker.wait_published(9, timeout=0.2)  # the window is full
    for expected in (16, 24, 30):
        broker.confirm_all()
        assert broker.wait_published(expected)
        assert len(broker.pending) <= 8
    broker.confirm_all()
    assert relay.flush(5) and outbox.rows == {}
    assert broker.published == list(range(1, 31))


def test_notified_rows_wait_for_a_scan_in_progress(relays: list[OutboxRelay]) -> None:
    broker, outbox = ScriptedBroker(), Outbox()
    outbox.commit(95)  # from an earlier run: only a scan finds them
    relay = start(relays, broker, outbox, page_size=10)
    relay.notify(outbox.commit(5))
    relay.notify(outbox.commit(5))
    assert relay.flush(5)
    assert broker.published == list(range(1, 106))


def test_the_buffer_never_holds_more_than_its_limit(relays: list[OutboxRelay]) -> None:
    broker, outbox = ScriptedBroker(auto_confirm=False), Outbox()
    relay = start(relays, broker, outbox, window=5, buffer_limit=20, page_size=7)
    held: list[int] = []
    broker.on_publish = lambda: held.append(relay.held)
    for _ in range(10):
        relay.notify(outbox.commit(10))
        held.append(relay.held)
    broker.auto_confirm = True
    broker.confirm_all()
    assert relay.flush(5)
    assert max(held) <= 20
    assert broker.published == list(range(1, 101))


def test_reading_the_outbox_is_retried(relays: list[OutboxRelay]) -> None:
    broker, outbox = ScriptedBroker(), Outbox()
    outbox.commit(12)
    outbox.fetch_failures = 3
    relay = start(relays, broker, outbox)
    assert relay.flush(5)
    assert broker.published == list(range(1, 13))


def test_a_repeated_notify_publishes_nothing_twice(relays: list[OutboxRelay]) -> None:
    broker, outbox = ScriptedBroker(), Outbox()
    relay = start(relays, broker, outbox)
    assert relay.flush(5)
    items = outbox.commit(10)
    relay.notify(items)
    relay.notify(items)
    assert relay.flush(5)
    relay.notify(items)  # already marked sent
    assert relay.flush(5)
    assert broker.published == list(range(1, 11))


def test_rows_wait_while_the_broker_is_away(relays: list[OutboxRelay]) -> None:
    broker, outbox = ScriptedBroker(), Outbox()
    broker.ready = False
    relay = start(relays, broker, outbox)
    relay.notify(outbox.commit(3))
    assert not relay.flush(0.2)
    assert broker.published == [] and relay.backlog == 3
    broker.reconnect()
    assert relay.flush(5)
    assert broker.published == [1, 2, 3]
