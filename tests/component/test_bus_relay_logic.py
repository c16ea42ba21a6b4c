"""OutboxRelay decisions with a scripted broker: nacks, reconnects, window, ordering, marking sent."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, cast

import gevent
import gevent.event
import gevent.socket
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
    """Committed rows in a dict; reads and deletes can be held up or made to fail."""

    def __init__(self) -> None:
        self.rows: dict[int, OutboxItem] = {}
        self.next_id = 1
        self.fetch_failures = 0
        self.on_page_read: Callable[[], None] = lambda: None  # before a read page is returned
        self.page_read = gevent.event.Event()
        self.mark_gate = gevent.event.Event()  # mark_sent waits while it is clear
        self.mark_gate.set()
        self.mark_broken = False
        self.marking = gevent.event.Event()  # a mark_sent call has started
        self.marked = gevent.event.Event()  # a mark_sent call has deleted its rows
        self.mark_failed = gevent.event.Event()
        self.markers: set[object] = set()  # the greenlets that called mark_sent

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
        page = [self.rows[i] for i in sorted(i for i in self.rows if i > after_id)[:limit]]
        self.on_page_read()
        self.page_read.set()
        return page

    def mark_sent(self, ids: list[int]) -> None:
        self.markers.add(gevent.getcurrent())
        self.marking.set()
        assert self.mark_gate.wait(5), "mark_sent was held up for good"
        if self.mark_broken:
            self.mark_failed.set()
            raise RuntimeError("database unavailable")
        for item_id in ids:
            del self.rows[item_id]
        self.marked.set()


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


def test_marking_rows_sent_does_not_hold_up_publishing(relays: list[OutboxRelay]) -> None:
    broker, outbox = ScriptedBroker(), Outbox()
    publishers: set[object] = set()
    broker.on_publish = lambda: publishers.add(gevent.getcurrent())
    outbox.mark_gate.clear()
    relay = start(relays, broker, outbox)
    relay.notify(outbox.commit(10))
    assert outbox.marking.wait(5)  # a delete is under way and does not return
    relay.notify(outbox.commit(10))
    assert broker.wait_published(20)
    outbox.mark_gate.set()
    assert relay.flush(5) and outbox.rows == {}
    assert broker.published == list(range(1, 21))
    assert publishers and publishers.isdisjoint(outbox.markers)


def five_published_while_marking_is_held(relays: list[OutboxRelay]) -> tuple[ScriptedBroker, Outbox, OutboxRelay]:
    """A relay that has published five rows whose delete is held up (until mark_gate is set)."""
    broker, outbox = ScriptedBroker(), Outbox()
    outbox.mark_gate.clear()
    relay = start(relays, broker, outbox)
    relay.notify(outbox.commit(5))
    assert broker.wait_published(5) and outbox.marking.wait(5)
    return broker, outbox, relay


def test_flush_waits_until_the_confirmed_rows_are_marked_sent(relays: list[OutboxRelay]) -> None:
    broker, outbox, relay = five_published_while_marking_is_held(relays)
    assert not relay.flush(0.2)
    assert relay.backlog == 5 and len(outbox.rows) == 5
    outbox.mark_gate.set()
    assert relay.flush(5)
    assert relay.backlog == 0 and outbox.rows == {}


def test_marking_that_fails_is_retried_and_publishes_nothing_twice(
        relays: list[OutboxRelay]) -> None:
    broker, outbox = ScriptedBroker(auto_confirm=False), Outbox()
    outbox.mark_broken = True
    relay = start(relays, broker, outbox)
    relay.notify(outbox.commit(20))
    assert broker.wait_published(20)
    broker.confirm_all()
    assert outbox.mark_failed.wait(5)
    outbox.page_read.clear()
    broker.drop_connection()
    broker.reconnect()  # a scan from id 0 finds the confirmed rows still in the outbox
    assert outbox.page_read.wait(5)
    assert not broker.wait_published(21, timeout=0.2)
    assert relay.backlog == 20 and relay.held == 20
    outbox.mark_broken = False
    assert relay.flush(5)
    assert outbox.rows == {} and relay.backlog == 0
    assert broker.published == list(range(1, 21))


def test_a_scan_skips_rows_marked_sent_while_its_page_was_read(
        relays: list[OutboxRelay]) -> None:
    broker, outbox = ScriptedBroker(auto_confirm=False), Outbox()
    outbox.mark_gate.clear()
    relay = start(relays, broker, outbox)
    relay.notify(outbox.commit(10))
    assert broker.wait_published(10)
    broker.confirm_all()
    assert outbox.marking.wait(5)
    backlog_when_read: list[int] = []

    def finish_marking_before_the_page_returns() -> None:
        outbox.mark_gate.set()
        assert outbox.marked.wait(5)
        backlog_when_read.append(relay.backlog)

    outbox.on_page_read = finish_marking_before_the_page_returns
    broker.drop_connection()
    broker.reconnect()  # a scan from id 0 reads the rows before they are deleted
    assert relay.flush(5)
    assert backlog_when_read[0] == 0  # marked and forgotten while the page was read
    assert broker.published == list(range(1, 11))
    assert outbox.rows == {}


def test_a_long_burst_lets_the_hub_poll_other_sockets(relays: list[OutboxRelay]) -> None:
    broker, outbox = ScriptedBroker(auto_confirm=False), Outbox()
    reader, writer = gevent.socket.socketpair()
    published_when_read: gevent.event.AsyncResult = gevent.event.AsyncResult()

    def read_one_byte() -> None:
        reader.recv(1)
        published_when_read.set(len(broker.published))

    def ready_the_reader_on_the_first_publish() -> None:
        if len(broker.published) == 1:
            writer.send(b"x")

    gevent.spawn(read_one_byte)
    broker.on_publish = ready_the_reader_on_the_first_publish
    try:
        relay = start(relays, broker, outbox, window=1000)
        relay.notify(outbox.commit(1000))
        assert broker.wait_published(1000)
        assert published_when_read.get(timeout=5) < 1000
    finally:
        reader.close()
        writer.close()
    broker.confirm_all()
    assert relay.flush(5)


def test_stop_ends_both_publishing_and_marking(relays: list[OutboxRelay]) -> None:
    broker, outbox, relay = five_published_while_marking_is_held(relays)
    relay.stop(timeout=0.2)  # cannot flush: the delete is held up
    outbox.mark_gate.set()
    relay.notify(outbox.commit(5))
    assert not outbox.marked.wait(0.2)
    assert not broker.wait_published(6, timeout=0.2)
    assert len(outbox.rows) == 10


def test_confirms_are_gathered_and_marked_sent_by_one_call(relays: list[OutboxRelay]) -> None:
    broker, outbox = ScriptedBroker(auto_confirm=False), Outbox()
    marked: list[list[int]] = []
    mark_sent = outbox.mark_sent

    def recording_mark_sent(ids: list[int]) -> None:
        marked.append(list(ids))
        mark_sent(ids)

    outbox.mark_sent = recording_mark_sent  # type: ignore[method-assign]
    relay = start(relays, broker, outbox, mark_delay=60.0, mark_batch=5)
    relay.notify(outbox.commit(5))
    assert broker.wait_published(5)
    for item_id in range(1, 5):
        broker.pending.pop(item_id).set(True)
    assert not outbox.marking.wait(0.3)  # four confirmed: still gathering
    broker.pending.pop(5).set(True)
    assert outbox.marked.wait(5)  # the fifth fills the batch: marked at once, not a minute later
    assert marked == [[1, 2, 3, 4, 5]] and outbox.rows == {}


def test_flush_marks_what_is_confirmed_without_waiting_for_more(relays: list[OutboxRelay]) -> None:
    broker, outbox = ScriptedBroker(), Outbox()
    relay = start(relays, broker, outbox, mark_delay=60.0)
    relay.notify(outbox.commit(3))
    assert broker.wait_published(3)
    assert relay.flush(5)
    assert outbox.rows == {} and relay.backlog == 0


def test_rows_committed_without_a_notify_are_read_back_in_order_on_rescan(
        relays: list[OutboxRelay]) -> None:
    broker, outbox = ScriptedBroker(), Outbox()
    relay = start(relays, broker, outbox, safety_interval=60.0)
    assert relay.flush(5)
    relay.notify(outbox.commit(3))
    assert relay.flush(5)
    outbox.commit(2)  # a batch found stored after its commit went unanswered
    relay.rescan()
    relay.notify(outbox.commit(3))  # the batches after it
    assert relay.flush(5)
    assert broker.published == list(range(1, 9))
    assert outbox.rows == {}


def test_a_row_committed_after_a_later_id_is_published_once_without_reading_the_outbox(
        relays: list[OutboxRelay]) -> None:
    broker, outbox = ScriptedBroker(), Outbox()
    relay = start(relays, broker, outbox, safety_interval=60.0)
    assert relay.flush(5)  # the first scan is over
    reads: list[int] = []
    outbox.on_page_read = lambda: reads.append(1)
    early, late = outbox.commit(1), outbox.commit(2)  # ids 1 and 2-3: the later commit lands first
    relay.notify(late)
    assert broker.wait_published(2)
    relay.notify(early)  # behind the cursor (3): no scan from it would find row 1
    relay.notify(early)  # told twice: still once
    assert relay.flush(5)
    assert broker.published == [2, 3, 1]
    assert reads == [] and outbox.rows == {}


def test_a_row_a_scan_published_before_its_notify_came_is_not_published_again(
        relays: list[OutboxRelay]) -> None:
    broker, outbox = ScriptedBroker(), Outbox()
    relay = start(relays, broker, outbox, safety_interval=60.0)
    assert relay.flush(5)
    later = outbox.commit(2)
    relay.notify(later)
    assert relay.flush(5)
    late = outbox.commit(1)  # committed, then read by a scan before its writer tells
    relay.rescan()
    assert relay.flush(5) and broker.published == [1, 2, 3]
    relay.notify(late)  # behind the cursor, and marked sent already
    assert relay.flush(5)
    assert broker.published == [1, 2, 3]
