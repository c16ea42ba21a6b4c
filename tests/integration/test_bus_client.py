"""AmqpClient against the real broker: topology, confirms, deliveries, reconnects."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import gevent
import gevent.event
import gevent.queue
import pika
import pytest

from callworker.bus.client import AmqpClient, Delivery
from callworker.bus.topology import (
    COMMANDS_EXCHANGE,
    COMMANDS_QUEUE,
    DEAD_QUEUE,
    DLX_EXCHANGE,
    EVENTS_EXCHANGE,
    node_queue,
)
from callworker.errors import BrokerUnavailable

pytestmark = pytest.mark.integration


def rabbitmqctl(*args: str) -> str:
    done = subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True,
                          text=True, timeout=60)
    return done.stdout


@pytest.fixture
def private_vhost() -> Iterator[tuple[str, str]]:
    """A vhost of one test alone: it may cut every connection or pre-declare queues."""
    vhost = f"callworker-bus-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield vhost, f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    rabbitmqctl("delete_vhost", vhost)


@contextmanager
def blocking_channel(url: str) -> Iterator[Any]:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        yield connection.channel()
    finally:
        if connection.is_open:
            connection.close()


def bound_queue(url: str, exchange: str, routing_key: str) -> str:
    name = f"test.{uuid.uuid4().hex[:12]}"
    with blocking_channel(url) as channel:
        channel.queue_declare(name, durable=True, arguments={"x-expires": 120_000})
        channel.queue_bind(name, exchange, routing_key=routing_key)
    return name


def take(url: str, queue: str, count: int, timeout: float = 10.0) -> list[tuple[Any, Any, bytes]]:
    """Up to `count` messages from `queue`, acked; stops after `timeout` s of silence."""
    got: list[tuple[Any, Any, bytes]] = []
    with blocking_channel(url) as channel:
        for method, props, body in channel.consume(queue, inactivity_timeout=timeout):
            if method is None:
                break
            channel.basic_ack(method.delivery_tag)
            got.append((method, props, body))
            if len(got) == count:
                break
        channel.cancel()
    return got


def new_node() -> str:
    return f"fs-{uuid.uuid4().hex[:8]}"


def ready_count(url: str, queue: str) -> int:
    with blocking_channel(url) as channel:
        return channel.queue_declare(queue, passive=True).method.message_count


@pytest.fixture
def make_client() -> Iterator[Callable[..., tuple[AmqpClient, gevent.queue.Queue]]]:
    """Builds started clients whose deliveries land in a queue; stops them afterwards."""
    clients: list[AmqpClient] = []

    def make(url: str, node_id: str, **kwargs: Any) -> tuple[AmqpClient, Any]:
        deliveries: gevent.queue.Queue = gevent.queue.Queue()
        kwargs.setdefault("prefetch", 10)
        client = AmqpClient(url, node_id=node_id, on_delivery=deliveries.put, **kwargs)
        clients.append(client)
        client.start()
        return client, deliveries

    yield make
    for client in clients:
        client.stop(timeout=5)


def test_topology_matches_the_contract(amqp_url: str, amqp_vhost: str, make_client) -> None:
    client, _ = make_client(amqp_url, node_id="fs-topo", consume=False)
    assert client.wait_ready(10)

    queues = {q["name"]: q for q in json.loads(rabbitmqctl(
        "list_queues", "-p", amqp_vhost, "name", "type", "arguments", "durable",
        "--formatter", "json"))}
    for name in (COMMANDS_QUEUE, node_queue("fs-topo")):
        assert queues[name]["type"] == "quorum" and queues[name]["durable"]
        assert ["x-dead-letter-exchange", "longstr", DLX_EXCHANGE] in queues[name]["arguments"]
    assert queues[DEAD_QUEUE]["durable"]

    exchanges = {e["name"]: e for e in json.loads(rabbitmqctl(
        "list_exchanges", "-p", amqp_vhost, "name", "type", "durable", "--formatter", "json"))}
    for name in (COMMANDS_EXCHANGE, EVENTS_EXCHANGE, DLX_EXCHANGE):
        assert exchanges[name]["type"] == "topic" and exchanges[name]["durable"]


def test_declaring_twice_is_harmless(amqp_url: str, make_client) -> None:
    first, _ = make_client(amqp_url, node_id="fs-twice", consume=False)
    assert first.wait_ready(10)
    second, _ = make_client(amqp_url, node_id="fs-twice", consume=False)
    assert second.wait_ready(10)
    for client in (first, second):
        client.publish_and_wait(EVENTS_EXCHANGE, "nobody.listens", b"{}", timeout=5)
    with blocking_channel(amqp_url) as channel:  # passive: exists as declared
        channel.queue_declare(COMMANDS_QUEUE, passive=True)
        channel.exchange_declare(EVENTS_EXCHANGE, passive=True)


def test_a_rejected_command_is_dead_lettered(amqp_url: str, make_client) -> None:
    client, _ = make_client(amqp_url, new_node(), consume=False)
    assert client.wait_ready(10)
    with blocking_channel(amqp_url) as channel:
        channel.queue_purge(COMMANDS_QUEUE)
        channel.queue_purge(DEAD_QUEUE)
    marker = uuid.uuid4().hex
    client.publish_and_wait(COMMANDS_EXCHANGE, "acme.originate", b'{"v": 1}',
                            message_id=marker, timeout=5)

    with blocking_channel(amqp_url) as channel:
        method, props, _ = next(channel.consume(COMMANDS_QUEUE, inactivity_timeout=5))
        assert props.message_id == marker
        channel.basic_nack(method.delivery_tag, requeue=False)
        channel.cancel()

    dead = take(amqp_url, DEAD_QUEUE, 1)
    assert [props.message_id for _, props, _ in dead] == [marker]
    assert dead[0][0].routing_key == "acme.originate"


def test_publish_is_confirmed_and_keeps_its_properties(amqp_url: str, make_client) -> None:
    client, _ = make_client(amqp_url, new_node(), consume=False)
    assert client.wait_ready(10)
    key = f"acme.call.answered.{uuid.uuid4()}"
    queue = bound_queue(amqp_url, EVENTS_EXCHANGE, key)

    result = client.publish(EVENTS_EXCHANGE, key, b'{"v": 1}', message_id="ev-1",
                            correlation_id="corr-1", headers={"x-tenant": "acme"})
    assert result.get(timeout=5) is True

    [(method, props, body)] = take(amqp_url, queue, 1)
    assert body == b'{"v": 1}' and method.routing_key == key
    assert props.delivery_mode == 2
    assert props.content_type == "application/json"
    assert (props.message_id, props.correlation_id) == ("ev-1", "corr-1")
    assert props.headers == {"x-tenant": "acme"}
    assert abs(props.timestamp - time.time()) < 10


def test_a_burst_of_publishes_arrives_in_order_written_as_one_chunk(
    amqp_url: str, make_client, mocker
) -> None:
    client, _ = make_client(amqp_url, new_node(), consume=False)
    assert client.wait_ready(10)
    key = f"acme.call.answered.{uuid.uuid4()}"
    queue = bound_queue(amqp_url, EVENTS_EXCHANGE, key)
    transport = client._connection._transport  # type: ignore[union-attr]
    writes = mocker.spy(transport, "write")
    # No yield between the publishes: their frames wait for one turn of the hub.
    results = [client.publish(EVENTS_EXCHANGE, key, b"%d" % n, message_id=str(n)) for n in range(300)]
    assert all(result.get(timeout=10) is True for result in results)
    assert [body for _m, _p, body in take(amqp_url, queue, 300)] == [b"%d" % n for n in range(300)]
    assert writes.call_count < 10  # 900 frames otherwise


def test_delivery_carries_reply_to_correlation_and_timestamp(amqp_url: str, make_client) -> None:
    node = new_node()
    client, deliveries = make_client(amqp_url, node)
    assert client.wait_ready(10)
    queue = node_queue(node)
    with blocking_channel(amqp_url) as channel:
        channel.basic_publish("", queue, b'{"v": 1}', pika.BasicProperties(
            delivery_mode=2, reply_to="replies.app", correlation_id="c-9", message_id="m-9",
            timestamp=1_700_000_000, content_type="application/json", headers={"h": "1"}))

    delivery: Delivery = deliveries.get(timeout=10)
    assert (delivery.queue, delivery.routing_key, delivery.exchange) == (queue, queue, "")
    assert (delivery.reply_to, delivery.correlation_id) == ("replies.app", "c-9")
    assert (delivery.message_id, delivery.timestamp) == ("m-9", 1_700_000_000)
    assert delivery.headers == {"h": "1"} and delivery.content_type == "application/json"
    assert delivery.redelivered is False and delivery.body == b'{"v": 1}'
    client.ack(delivery)
    client.stop(timeout=5)
    assert ready_count(amqp_url, queue) == 0


def test_unacked_deliveries_come_back_after_the_broker_drops_us(
        private_vhost: tuple[str, str], make_client) -> None:
    vhost, url = private_vhost
    lost = gevent.event.Event()
    node = new_node()
    client, deliveries = make_client(url, node, on_lost=lost.set)
    assert client.wait_ready(10)
    queue = node_queue(node)
    client.publish_and_wait("", queue, b'{"n": 1}', message_id="first", timeout=5)
    first: Delivery = deliveries.get(timeout=10)

    rabbitmqctl("close_all_connections", "-p", vhost, "test")
    assert lost.wait(10)
    again: Delivery = deliveries.get(timeout=15)  # the client reconnected by itself
    assert again.message_id == "first" and again.redelivered is True
    assert again.generation > first.generation

    client.ack(first)  # stale: must not ack `again`, which reuses the delivery tag
    client.publish_and_wait("", queue, b'{"n": 2}', message_id="second", timeout=5)
    second: Delivery = deliveries.get(timeout=10)
    assert second.message_id == "second" and second.generation == again.generation
    client.ack(second)
    client.stop(timeout=5)
    assert ready_count(url, queue) == 1  # `again` was never acked: back in the queue


def test_pause_and_resume_consuming(amqp_url: str, make_client) -> None:
    node = new_node()
    client, deliveries = make_client(amqp_url, node)
    assert client.wait_ready(10)
    queue = node_queue(node)
    client.publish_and_wait("", queue, b"1", message_id="before", timeout=5)
    before: Delivery = deliveries.get(timeout=10)

    client.pause_consuming()
    client.publish_and_wait("", queue, b"2", message_id="paused", timeout=5)
    with pytest.raises(gevent.queue.Empty):
        deliveries.get(timeout=0.5)
    client.ack(before)  # still ours while paused

    client.resume_consuming()
    resumed: Delivery = deliveries.get(timeout=10)
    assert resumed.message_id == "paused"
    client.ack(resumed)
    client.stop(timeout=5)
    assert ready_count(amqp_url, queue) == 0


def test_publish_refuses_when_not_ready(amqp_url: str, make_client) -> None:
    never_started = AmqpClient(amqp_url, node_id="x", prefetch=1, on_delivery=print)
    with pytest.raises(BrokerUnavailable):
        never_started.publish(EVENTS_EXCHANGE, "a.b", b"{}")

    unreachable, _ = make_client("amqp://guest:secret@127.0.0.1:1/%2F", new_node())
    assert not unreachable.wait_ready(0.5)
    with pytest.raises(BrokerUnavailable):
        unreachable.publish(EVENTS_EXCHANGE, "a.b", b"{}")

    client, _ = make_client(amqp_url, new_node(), consume=False)
    assert client.wait_ready(10)
    client.stop(timeout=5)
    with pytest.raises(BrokerUnavailable):
        client.publish_and_wait(EVENTS_EXCHANGE, "a.b", b"{}", timeout=1)


def test_backpressure_bounds_unconfirmed_publishes(amqp_url: str, make_client) -> None:
    client, _ = make_client(amqp_url, new_node(), consume=False, max_unconfirmed=3)
    assert client.wait_ready(10)
    in_flight: list[int] = []
    results = []
    for n in range(50):
        results.append(client.publish(EVENTS_EXCHANGE, "nobody.listens", b"%d" % n))
        in_flight.append(client.unconfirmed)
    assert max(in_flight) == 3
    assert all(result.get(timeout=10) is True for result in results)


def test_stop_waits_for_in_flight_confirms(amqp_url: str, make_client) -> None:
    client, _ = make_client(amqp_url, new_node(), consume=False)
    assert client.wait_ready(10)
    results = [client.publish(EVENTS_EXCHANGE, "nobody.listens", b"{}") for _ in range(300)]
    client.stop(timeout=10)
    assert all(result.ready() and result.successful() for result in results)


def test_a_broker_refusing_quorum_gets_a_classic_queue(
        private_vhost: tuple[str, str], make_client) -> None:
    vhost, url = private_vhost
    with blocking_channel(url) as channel:  # an existing classic intake refuses quorum
        channel.queue_declare(COMMANDS_QUEUE, durable=True,
                              arguments={"x-dead-letter-exchange": DLX_EXCHANGE})
    client, deliveries = make_client(url, node_id="fs-classic")
    assert client.wait_ready(15)

    queues = {q["name"]: q["type"] for q in json.loads(rabbitmqctl(
        "list_queues", "-p", vhost, "name", "type", "--formatter", "json"))}
    assert queues[COMMANDS_QUEUE] == "classic"
    assert queues[node_queue("fs-classic")] == "quorum"
    client.publish_and_wait(COMMANDS_EXCHANGE, "acme.hangup", b"{}", message_id="cmd",
                            timeout=5)
    delivery: Delivery = deliveries.get(timeout=10)
    assert (delivery.queue, delivery.message_id) == (COMMANDS_QUEUE, "cmd")
    client.ack(delivery)
