"""AmqpClient: one reconnecting RabbitMQ connection on the gevent hub.

Strategy: a supervisor greenlet opens a pika GeventConnection and waits until it ends,
then sleeps a jittered, capped backoff (reset once a connection became ready) and
opens the next one, until stop(). Each connection is a numbered generation and runs
as small named steps in pika callbacks (hub greenlet, never blocking):
open -> declare topology -> publish channel in confirm mode (ready) -> consume
channel with prefetch -> consumers. Deliveries carry their generation, so an ack
meant for a dead connection is dropped instead of acking an unrelated message
that reuses the delivery tag. Any unexpected channel close restarts the whole
connection: one recovery path instead of several half-states.
Publishes are confirmed: each takes one of `max_unconfirmed` slots (the calling
greenlet waits for a slot, bounding pika's unbounded write buffer) and gets an
AsyncResult settled by the broker's ack/nack or failed when the connection is lost.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import gevent
import gevent.event
import gevent.lock
import pika
from pika.adapters.gevent_connection import GeventConnection, _GeventSelectorIOLoop
from pika.channel import Channel
from pika.exceptions import AMQPError
from pika.spec import Basic

from callworker.backoff import Backoff
from callworker.bus.coalescing import CoalescingGeventConnection
from callworker.bus.topology import COMMANDS_QUEUE, declare_topology, node_queue
from callworker.config import mask_url
from callworker.errors import BrokerUnavailable, PublishFailed

__all__ = ["AmqpClient", "Delivery"]

log = logging.getLogger("callworker.bus")

# pika builds a selector loop (with a pipe) per connection unless given one, and
# that pipe is only released by ioloop.close(), which destroys the gevent hub loop.
# One shared loop per hub keeps reconnects from leaking two descriptors each.
_IOLOOPS: dict[int, _GeventSelectorIOLoop] = {}


def _shared_ioloop() -> _GeventSelectorIOLoop:
    hub = gevent.get_hub()
    if id(hub) not in _IOLOOPS:
        _IOLOOPS[id(hub)] = _GeventSelectorIOLoop(hub)
    return _IOLOOPS[id(hub)]


@dataclass(frozen=True)
class Delivery:
    """One message handed to `on_delivery`; ack or reject it through the client."""

    queue: str
    exchange: str
    routing_key: str
    body: bytes
    content_type: str | None
    reply_to: str | None
    correlation_id: str | None
    message_id: str | None
    timestamp: int | None
    headers: dict[str, Any]
    redelivered: bool
    delivery_tag: int
    generation: int


class AmqpClient:
    """Consumer and confirmed publisher over one self-healing connection."""

    def __init__(self, url: str, *, node_id: str, prefetch: int,
                 on_delivery: Callable[[Delivery], None],
                 on_ready: Callable[[], None] | None = None,
                 on_lost: Callable[[], None] | None = None,
                 max_unconfirmed: int = 1000, consume: bool = True,
                 name: str = "callworker") -> None:
        self._params = pika.URLParameters(url)
        self._params.client_properties = {"connection_name": name}
        self._safe_url = mask_url(url)
        self._node_id = node_id
        self._queues = [COMMANDS_QUEUE, node_queue(node_id)] if consume else []
        self._prefetch = prefetch
        self._on_delivery = on_delivery
        self._ready_listeners = [on_ready] if on_ready else []
        self._lost_listeners = [on_lost] if on_lost else []
        self._slots = gevent.lock.Semaphore(max_unconfirmed)
        self._backoff = Backoff()
        self._supervisor: gevent.Greenlet | None = None
        self._stopping = False
        self._stop_event = gevent.event.Event()
        self._ready_event = gevent.event.Event()
        self._idle = gevent.event.Event()
        self._idle.set()
        self._paused = False
        self._generation = 0
        self._connection: GeventConnection | None = None
        self._connection_done = gevent.event.Event()
        self._publish_ch: Channel | None = None
        self._consume_ch: Channel | None = None
        self._consumers: dict[str, str] = {}  # consumer tag -> queue
        self._pending: OrderedDict[int, gevent.event.AsyncResult] = OrderedDict()
        self._publish_seq = 0

    # ----- public surface -------------------------------------------------------

    def add_listener(self, on_ready: Callable[[], None] | None = None,
                     on_lost: Callable[[], None] | None = None) -> None:
        """More ready/lost callbacks (hub greenlet, must not block)."""
        if on_ready:
            self._ready_listeners.append(on_ready)
        if on_lost:
            self._lost_listeners.append(on_lost)

    @property
    def ready(self) -> bool:
        """Topology declared and the publish channel in confirm mode."""
        return self._ready_event.is_set() and not self._stopping

    @property
    def generation(self) -> int:
        """Number of the current (or last) connection; grows on every reconnect."""
        return self._generation

    @property
    def unconfirmed(self) -> int:
        """Publishes sent and not yet confirmed."""
        return len(self._pending)

    def start(self) -> None:
        if self._supervisor is None:
            self._supervisor = gevent.spawn(self._supervise)

    def wait_ready(self, timeout: float) -> bool:
        self._ready_event.wait(timeout)
        return self.ready

    def stop(self, timeout: float = 10.0) -> None:
        """Stop consuming, let in-flight confirms arrive (up to timeout), close."""
        if self._supervisor is None or self._stopping:
            return
        deadline = time.monotonic() + timeout
        self.pause_consuming()
        self._stopping = True
        self._stop_event.set()
        self._idle.wait(max(0.0, deadline - time.monotonic()))
        self._close_connection("stopping")
        self._connection_done.wait(max(0.0, deadline - time.monotonic()))
        self._supervisor.kill(block=True, timeout=1.0)
        log.info("AMQP client for %s stopped", self._safe_url)

    def publish(self, exchange: str, routing_key: str, body: bytes, *,
                message_id: str | None = None, correlation_id: str | None = None,
                headers: dict[str, Any] | None = None,
                content_type: str = "application/json",
                generation: int | None = None) -> gevent.event.AsyncResult:
        """Send a persistent message; the result is settled by the broker's confirm.

        Blocks the calling greenlet while `max_unconfirmed` publishes are in flight,
        so never call it from a pika callback when that many may be outstanding.
        With `generation`, raises BrokerUnavailable rather than publish on another
        connection (a caller keeping order across reconnects needs that).
        """
        properties = pika.BasicProperties(
            content_type=content_type, delivery_mode=2, message_id=message_id,
            correlation_id=correlation_id, headers=headers, timestamp=int(time.time()))
        return self._publish(exchange, routing_key, body, properties, None, generation)

    def publish_and_wait(self, exchange: str, routing_key: str, body: bytes, *,
                         timeout: float, **props: Any) -> None:
        """Publish and wait for the confirm; raises PublishFailed or BrokerUnavailable."""
        deadline = time.monotonic() + timeout
        properties = pika.BasicProperties(delivery_mode=2, timestamp=int(time.time()),
                                          **{"content_type": "application/json", **props})
        result = self._publish(exchange, routing_key, body, properties, timeout, None)
        try:
            result.get(timeout=max(0.0, deadline - time.monotonic()))
        except gevent.Timeout:
            raise PublishFailed(f"not confirmed within {timeout} s") from None

    def ack(self, delivery: Delivery) -> None:
        channel = self._channel_for(delivery)
        if channel is not None:
            self._quietly(channel.basic_ack, delivery.delivery_tag)

    def reject(self, delivery: Delivery, *, requeue: bool) -> None:
        channel = self._channel_for(delivery)
        if channel is not None:
            self._quietly(channel.basic_nack, delivery.delivery_tag, False, requeue)

    def pause_consuming(self) -> None:
        """Cancel every consumer; deliveries already received may still be acked."""
        self._paused = True
        channel, tags = self._consume_ch, list(self._consumers)
        self._consumers.clear()
        if channel is not None and channel.is_open:
            for tag in tags:
                self._quietly(channel.basic_cancel, tag)

    def resume_consuming(self) -> None:
        self._paused = False
        if self._consume_ch is not None and self._consume_ch.is_open and not self._consumers:
            self._start_consumers(self._consume_ch)

    # ----- publishing -----------------------------------------------------------

    def _publish(self, exchange: str, routing_key: str, body: bytes,
                 properties: pika.BasicProperties, slot_timeout: float | None,
                 generation: int | None) -> gevent.event.AsyncResult:
        if not self.ready:
            raise BrokerUnavailable(f"RabbitMQ at {self._safe_url} is not ready")
        if not self._slots.acquire(timeout=slot_timeout):
            raise PublishFailed(f"{len(self._pending)} publishes still unconfirmed")
        channel = self._publish_ch
        if not self.ready or channel is None or generation not in (None, self._generation):
            self._slots.release()  # the connection died or changed while we waited
            raise BrokerUnavailable(f"RabbitMQ at {self._safe_url} is not ready")
        try:
            channel.basic_publish(exchange, routing_key, body, properties)
        except AMQPError as exc:
            self._slots.release()
            raise BrokerUnavailable(f"publish failed: {exc!r}") from None
        # No switch since the ready check: the broker numbers this publish next.
        self._publish_seq += 1
        result = gevent.event.AsyncResult()
        self._pending[self._publish_seq] = result
        self._idle.clear()
        return result

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        acked = isinstance(method, Basic.Ack)
        if method.multiple:  # every publish up to this tag, oldest first
            while self._pending and next(iter(self._pending)) <= method.delivery_tag:
                self._settle(next(iter(self._pending)), acked)
        else:
            self._settle(method.delivery_tag, acked)

    def _settle(self, tag: int, acked: bool) -> None:
        result = self._pending.pop(tag, None)
        if result is None:
            return
        self._slots.release()
        if acked:
            result.set(True)
        else:
            result.set_exception(PublishFailed("the broker refused the publish (nack)"))
        if not self._pending:
            self._idle.set()

    def _fail_pending(self, why: str) -> None:
        pending, self._pending = self._pending, OrderedDict()
        for result in pending.values():
            self._slots.release()
            result.set_exception(PublishFailed(why))
        self._idle.set()

    # ----- consuming ------------------------------------------------------------

    def _channel_for(self, delivery: Delivery) -> Channel | None:
        channel = self._consume_ch
        if delivery.generation != self._generation or channel is None or not channel.is_open:
            log.debug("dropping ack/reject of a delivery from a closed connection")
            return None
        return channel

    def _start_consumers(self, channel: Channel) -> None:
        for queue in self._queues:
            tag = channel.basic_consume(queue, self._on_message, auto_ack=False)
            self._consumers[tag] = queue

    def _on_message(self, _channel: Channel, method: Any, props: Any, body: bytes) -> None:
        delivery = Delivery(
            queue=self._consumers.get(method.consumer_tag, ""), exchange=method.exchange,
            routing_key=method.routing_key, body=body, content_type=props.content_type,
            reply_to=props.reply_to, correlation_id=props.correlation_id,
            message_id=props.message_id, timestamp=props.timestamp,
            headers=dict(props.headers or {}), redelivered=bool(method.redelivered),
            delivery_tag=method.delivery_tag, generation=self._generation)
        try:
            self._on_delivery(delivery)
        except Exception:
            log.exception("on_delivery failed; message %s stays unacked", delivery.message_id)

    @staticmethod
    def _quietly(action: Callable[..., Any], *args: Any) -> None:
        """Channel calls whose failure only means the channel is already gone."""
        try:
            action(*args)
        except AMQPError as exc:
            log.debug("channel call dropped: %r", exc)

    # ----- connection life: one step per callback --------------------------------

    def _supervise(self) -> None:
        while not self._stopping:
            self._run_connection()
            if self._stopping:
                break
            delay = self._backoff.next()
            log.info("reconnecting to %s in %.1f s", self._safe_url, delay)
            self._stop_event.wait(delay)

    def _run_connection(self) -> None:
        self._generation += 1
        self._connection_done = done = gevent.event.Event()
        try:
            self._connection = CoalescingGeventConnection(
                self._params, on_open_callback=self._on_open,
                on_open_error_callback=self._on_open_error,
                on_close_callback=self._on_closed, custom_ioloop=_shared_ioloop())
        except (AMQPError, OSError, ValueError) as exc:
            log.warning("cannot connect to %s: %r", self._safe_url, exc)
            return
        done.wait()

    def _on_open(self, connection: GeventConnection) -> None:
        log.info("connected to %s (generation %d)", self._safe_url, self._generation)
        connection.add_on_connection_blocked_callback(
            lambda *_: log.warning("RabbitMQ blocked publishing (resource alarm)"))
        declare_topology(connection, self._node_id, partial(self._on_topology, connection),
                         partial(self._on_topology_error, connection))

    def _on_topology(self, connection: GeventConnection) -> None:
        current = connection.is_open and connection is self._connection
        if current:  # not a connection that ended while its topology was declared
            connection.channel(on_open_callback=self._on_publish_channel)

    def _on_topology_error(self, connection: GeventConnection, exc: Exception) -> None:
        if connection is self._connection:
            log.warning("declaring the topology failed: %s", exc)
            self._close_connection("topology failed")

    def _on_publish_channel(self, channel: Channel) -> None:
        channel.add_on_close_callback(self._on_channel_closed)
        channel.confirm_delivery(self._on_confirm, callback=partial(self._on_confirming, channel))

    def _on_confirming(self, channel: Channel, _frame: Any) -> None:
        self._publish_ch, self._publish_seq = channel, 0
        self._backoff.reset()
        self._ready_event.set()
        self._notify(self._ready_listeners)
        connection = self._connection
        if self._queues and connection is not None and connection.is_open:
            connection.channel(on_open_callback=self._on_consume_channel)

    def _on_consume_channel(self, channel: Channel) -> None:
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_cancel_callback(self._on_broker_cancel)
        channel.basic_qos(prefetch_count=self._prefetch,
                          callback=partial(self._on_qos, channel))

    def _on_qos(self, channel: Channel, _frame: Any) -> None:
        self._consume_ch = channel
        if not self._paused and not self._stopping:
            self._start_consumers(channel)

    def _on_broker_cancel(self, _frame: Any) -> None:
        log.warning("the broker cancelled a consumer; reconnecting")
        self._close_connection("consumer cancelled")

    def _on_channel_closed(self, _channel: Channel, reason: Exception) -> None:
        connection = self._connection
        if connection is None or connection.is_closing or connection.is_closed:
            return  # closed along with its connection
        if not self._stopping:
            log.warning("channel closed unexpectedly (%r); reconnecting", reason)
            self._close_connection("channel closed")

    def _on_open_error(self, connection: GeventConnection, exc: BaseException) -> None:
        if connection is self._connection:
            log.warning("cannot connect to %s: %r", self._safe_url, exc)
            self._connection = None
            self._connection_done.set()

    def _on_closed(self, connection: GeventConnection, reason: BaseException) -> None:
        if connection is not self._connection:
            return
        was_ready = self._ready_event.is_set()
        self._ready_event.clear()
        self._connection = self._publish_ch = self._consume_ch = None
        self._consumers.clear()
        self._fail_pending("connection lost before the broker confirmed")
        log.log(logging.INFO if self._stopping else logging.WARNING,
                "connection to %s closed: %r", self._safe_url, reason)
        if was_ready:
            self._notify(self._lost_listeners)
        self._connection_done.set()

    def _close_connection(self, why: str) -> None:
        connection = self._connection
        if connection is not None and not (connection.is_closing or connection.is_closed):
            try:
                connection.close(reply_text=why)
            except AMQPError as exc:
                log.debug("close failed: %r", exc)

    @staticmethod
    def _notify(listeners: list[Callable[[], None]]) -> None:
        for listener in listeners:
            try:
                listener()
            except Exception:
                log.exception("connection listener failed")
