"""OutboxRelay against the real broker, with an in-memory outbox standing in for the database."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import gevent
import gevent.event
import pika
import pytest
from sqlalchemy import Engine, text

from callworker.bus.client import AmqpClient
from callworker.bus.relay import OutboxItem, OutboxRelay
from callworker.bus.topology import EVENTS_EXCHANGE
from callworker.store import delete_outbox, make_engine, migrate, pending_outbox

pytestmark = pytest.mark.integration


class MemoryOutbox:
    """Committed rows in a dict; `mark_sent` deletes them and can be told to fail."""

    def __init__(self, routing_key: str) -> None:
        self.routing_key = routing_key
        self.rows: dict[int, OutboxItem] = {}
        self.next_id = 1
        self.mark_failures = 0
        self.max_page = 0

    def commit(self, count: int) -> list[OutboxItem]:
        items = []
        for _ in range(count):
            item = OutboxItem(id=self.next_id, exchange=EVENTS_EXCHANGE,
                              routing_key=self.routing_key, body=b'{"n": %d}' % self.next_id,
                              message_id=str(self.next_id), correlation_id=None,
                              headers={"x-row": self.next_id})
            self.rows[item.id] = item
            items.append(item)
            self.next_id += 1
        return items

    def fetch_pending(self, after_id: int, limit: int) -> list[OutboxItem]:
        self.max_page = max(self.max_page, limit)
        return [self.rows[i] for i in sorted(i for i in self.rows if i > after_id)[:limit]]

    def mark_sent(self, ids: list[int]) -> None:
        if self.mark_failures:
            self.mark_failures -= 1
            raise RuntimeError("database unavailable")
        for item_id in ids:
            self.rows.pop(item_id, None)


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def private_url() -> Iterator[tuple[str, str]]:
    """A vhost of one test alone, so cutting every connection in it disturbs nobody else."""
    vhost = f"callworker-relay-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield vhost, f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    rabbitmqctl("delete_vhost", vhost)


def make_route(url: str) -> tuple[str, str]:
    """A fresh routing key and a queue bound to it on callworker.events."""
    key = f"relay.{uuid.uuid4().hex[:12]}"
    queue = f"test.{key}"
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.exchange_declare(EVENTS_EXCHANGE, exchange_type="topic", durable=True)
    channel.queue_declare(queue, durable=True, arguments={"x-expires": 120_000})
    channel.queue_bind(queue, EVENTS_EXCHANGE, routing_key=key)
    connection.close()
    return key, queue


def received_ids(url: str, queue: str, expect: int) -> list[int]:
    """Row ids in arrival order: until `expect` arrived, then whatever follows within 0.5 s."""
    ids: list[int] = []
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=500)
    for timeout in (15.0, 0.5):  # the second pass catches duplicates or strays
        for method, props, _ in channel.consume(queue, inactivity_timeout=timeout):
            if method is None:
                break
            ids.append(int(props.message_id))
            channel.basic_ack(method.delivery_tag)
            if timeout > 1 and len(ids) >= expect:
                break
        channel.cancel()  # unacked prefetched messages go back to the queue
    connection.close()
    return ids


def first_occurrences(ids: list[int]) -> list[int]:
    seen: set[int] = set()
    firsts = []
    for item_id in ids:
        if item_id not in seen:
            seen.add(item_id)
            firsts.append(item_id)
    return firsts


@pytest.fixture
def started() -> Iterator[list[Any]]:
    """Collects relays and clients to stop after the test, relays first."""
    things: list[Any] = []
    yield things
    for thing in things:
        thing.stop(timeout=5)


def make_relay(url: str, outbox: MemoryOutbox | PostgresOutbox, started: list[Any], *,
               start_client: bool = True, **options: Any) -> tuple[OutboxRelay, AmqpClient]:
    client = AmqpClient(url, node_id=f"relay-{uuid.uuid4().hex[:6]}", prefetch=1,
                        on_delivery=lambda d: None, consume=False)
    relay = OutboxRelay(client, fetch_pending=outbox.fetch_pending,
                        mark_sent=outbox.mark_sent, **options)
    started.extend([relay, client])
    if start_client:
        client.start()
    relay.start()
    return relay, client


def test_notified_rows_arrive_once_in_order(amqp_url: str, started) -> None:
    key, queue = make_route(amqp_url)
    outbox = MemoryOutbox(key)
    relay, client = make_relay(amqp_url, outbox, started)
    assert client.wait_ready(10)
    for _ in range(100):
        relay.notify(outbox.commit(50))
        gevent.idle()  # let the relay interleave with the writer, as in production
    assert relay.flush(30)
    assert outbox.rows == {}
    assert received_ids(amqp_url, queue, 5000) == list(range(1, 5001))


def test_rows_committed_while_the_broker_is_cut_off_are_delivered(
        private_url: tuple[str, str], started) -> None:
    vhost, amqp_url = private_url
    key, queue = make_route(amqp_url)
    outbox = MemoryOutbox(key)
    relay, client = make_relay(amqp_url, outbox, started)
    assert client.wait_ready(10)
    cut_off = gevent.event.Event()

    def commit_during_outage() -> None:  # hub greenlet: exactly while the broker is gone
        relay.notify(outbox.commit(500))
        cut_off.set()

    client.add_listener(on_lost=commit_during_outage)
    relay.notify(outbox.commit(2000))
    rabbitmqctl("close_all_connections", "-p", vhost, "test")
    assert cut_off.wait(10)
    relay.notify(outbox.commit(500))

    assert relay.flush(30)
    assert outbox.rows == {}
    ids = received_ids(amqp_url, queue, 3000)
    assert first_occurrences(ids) == list(range(1, 3001))


def test_a_notify_on_an_idle_relay_is_published_at_once(amqp_url: str, started) -> None:
    key, queue = make_route(amqp_url)
    outbox = MemoryOutbox(key)
    # No safety scan in this test's lifetime: only the fast path can deliver.
    relay, client = make_relay(amqp_url, outbox, started, safety_interval=3600.0)
    assert client.wait_ready(10) and relay.flush(10)  # idle: waiting for work
    for _ in range(5):
        relay.notify(outbox.commit(1))
        assert relay.flush(5)  # published, confirmed and marked sent
    assert received_ids(amqp_url, queue, 5) == [1, 2, 3, 4, 5]


def test_overflowing_the_buffer_still_delivers_everything(amqp_url: str, started) -> None:
    key, queue = make_route(amqp_url)
    outbox = MemoryOutbox(key)
    relay, client = make_relay(amqp_url, outbox, started, window=20, buffer_limit=100,
                               page_size=30)
    assert client.wait_ready(10)
    held = []
    for _ in range(40):
        relay.notify(outbox.commit(75))  # far more than the buffer holds
        held.append(relay.held)
        gevent.idle()
    assert relay.flush(30)
    assert max(held) <= 100 and outbox.max_page <= 30
    assert outbox.rows == {}
    assert received_ids(amqp_url, queue, 3000) == list(range(1, 3001))


def test_failing_mark_sent_is_retried_until_every_row_is_marked(
        amqp_url: str, started) -> None:
    key, queue = make_route(amqp_url)
    outbox = MemoryOutbox(key)
    outbox.mark_failures = 3
    relay, client = make_relay(amqp_url, outbox, started)
    assert client.wait_ready(10)
    relay.notify(outbox.commit(300))
    assert relay.flush(20)
    assert outbox.mark_failures == 0 and outbox.rows == {}
    assert first_occurrences(received_ids(amqp_url, queue, 300)) == list(range(1, 301))


def test_flush_is_true_only_once_everything_is_confirmed(amqp_url: str, started) -> None:
    key, queue = make_route(amqp_url)
    outbox = MemoryOutbox(key)
    relay, client = make_relay(amqp_url, outbox, started, start_client=False)
    relay.notify(outbox.commit(10))
    assert relay.flush(0.3) is False
    assert relay.backlog == 10 and len(outbox.rows) == 10

    client.start()
    assert relay.flush(10) is True
    assert relay.backlog == 0 and outbox.rows == {}
    assert received_ids(amqp_url, queue, 10) == list(range(1, 11))


def test_rows_left_over_from_an_earlier_run_are_published_at_start(
        amqp_url: str, started) -> None:
    key, queue = make_route(amqp_url)
    outbox = MemoryOutbox(key)
    outbox.commit(250)  # committed, never notified: the relay finds them itself
    relay, client = make_relay(amqp_url, outbox, started, page_size=40)
    assert client.wait_ready(10)
    assert relay.flush(10)
    assert outbox.rows == {}
    assert received_ids(amqp_url, queue, 250) == list(range(1, 251))


class PostgresOutbox:
    """This test's rows in the real outbox table, read and deleted by the store's functions."""

    def __init__(self, engine: Engine, routing_key: str) -> None:
        self.engine = engine
        self.routing_key = routing_key
        self.node = f"relay-{uuid.uuid4().hex[:8]}"
        self.committed = 0

    def commit(self, count: int) -> list[OutboxItem]:
        """Rows numbered on from the last ones (message_id), ids ascending like the journal's."""
        numbers = list(range(self.committed + 1, self.committed + count + 1))
        self.committed += count
        with self.engine.begin() as conn:
            ids = conn.execute(text(
                "INSERT INTO outbox (node, exchange, routing_key, message_id, body, created_at) "
                "SELECT :node, :exchange, :key, t.n::text, convert_to('{}', 'UTF8'), now() "
                "FROM unnest(CAST(:numbers AS int[])) AS t(n) ORDER BY t.n RETURNING id"),
                {"node": self.node, "exchange": EVENTS_EXCHANGE, "key": self.routing_key,
                 "numbers": numbers}).scalars().all()
        return [OutboxItem(id=row_id, exchange=EVENTS_EXCHANGE, routing_key=self.routing_key,
                           body=b"{}", message_id=str(number), correlation_id=None, headers=None)
                for row_id, number in zip(sorted(ids), numbers, strict=True)]

    def fetch_pending(self, after_id: int, limit: int) -> list[OutboxItem]:
        return [OutboxItem(id=row["id"], exchange=row["exchange"], routing_key=row["routing_key"],
                           body=bytes(row["body"]), message_id=row["message_id"],
                           correlation_id=row["correlation_id"], headers=row["headers"])
                for row in pending_outbox(self.engine, self.node, after_id, limit)]

    def mark_sent(self, ids: list[int]) -> None:
        delete_outbox(self.engine, ids)

    def remaining(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM outbox WHERE node = :node"),
                                    {"node": self.node}).scalar_one())


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    migrate(pg_url)
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


def test_scans_racing_the_deletes_in_postgresql_publish_every_row_once(
        pg_engine: Engine, amqp_url: str, started) -> None:
    key, queue = make_route(amqp_url)
    outbox = PostgresOutbox(pg_engine, key)
    outbox.commit(1000)  # left over from an earlier run: read in pages
    # Safety scans from id 0 every few milliseconds read rows whose deletion is under way.
    relay, client = make_relay(amqp_url, outbox, started, window=100, page_size=300,
                               safety_interval=0.005)
    assert client.wait_ready(10)
    for _ in range(40):
        relay.notify(outbox.commit(50))
    assert relay.flush(30)
    assert outbox.remaining() == 0
    assert received_ids(amqp_url, queue, 3000) == list(range(1, 3001))
