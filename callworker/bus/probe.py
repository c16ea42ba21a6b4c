"""An upstream app in miniature: publishes commands, collects replies and events.

Used by ``callworker demo``, the benchmark and the integration tests. It speaks
only the contract: commands to ``callworker.commands``, replies on a private
queue via ``reply_to``, events from ``callworker.events`` through a binding.
Two pika BlockingConnections (one publishes, one consumes in its own greenlet)
because a blocking connection must never be shared between greenlets.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

import gevent
import pika
from gevent.lock import Semaphore
from gevent.queue import Empty, Queue

from callworker.bus.topology import COMMANDS_EXCHANGE, EVENTS_EXCHANGE

__all__ = ["Probe", "Received"]

log = logging.getLogger("callworker.probe")


class Received(dict):  # type: ignore[type-arg]
    """A JSON body with the AMQP properties that came with it under ``_amqp``."""


class Probe:
    def __init__(self, url: str, *, event_bindings: tuple[str, ...] = ("#",)) -> None:
        self._params = pika.URLParameters(url)
        self._bindings = event_bindings
        self._lock = Semaphore()
        self.replies: Queue[Received] = Queue()
        self.events: Queue[Received] = Queue()
        self._stop = False
        self._pub = pika.BlockingConnection(self._params)
        self._pub_channel = self._pub.channel()
        self._pub_channel.confirm_delivery()
        self._pub_channel.exchange_declare(COMMANDS_EXCHANGE, "topic", durable=True)
        self._pub_channel.exchange_declare(EVENTS_EXCHANGE, "topic", durable=True)
        self._sub = pika.BlockingConnection(self._params)
        channel = self._sub.channel()
        self.reply_queue = channel.queue_declare("", exclusive=True).method.queue
        events_queue = channel.queue_declare("", exclusive=True).method.queue
        for key in event_bindings:
            channel.queue_bind(events_queue, EVENTS_EXCHANGE, routing_key=key)
        channel.basic_consume(self.reply_queue, self._on_reply, auto_ack=True)
        channel.basic_consume(events_queue, self._on_event, auto_ack=True)
        self._greenlet = gevent.spawn(self._consume)

    def _consume(self) -> None:
        while not self._stop:
            self._sub.process_data_events(time_limit=0.05)

    @staticmethod
    def _received(properties: Any, routing_key: str, body: bytes) -> Received:
        try:
            data = Received(json.loads(body))
        except ValueError:
            data = Received(raw=body.decode("utf-8", "replace"))
        data["_amqp"] = {
            "routing_key": routing_key,
            "correlation_id": properties.correlation_id,
            "message_id": properties.message_id,
            "headers": properties.headers or {},
        }
        return data

    def _on_reply(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        self.replies.put(self._received(properties, method.routing_key, body))

    def _on_event(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        self.events.put(self._received(properties, method.routing_key, body))

    # ------------------------------------------------------------ publishing

    def publish_raw(
        self,
        routing_key: str,
        body: bytes,
        *,
        reply: bool = True,
        correlation_id: str | None = None,
        timestamp: int | None = None,
        stamped: bool = True,
    ) -> str:
        """Publish any bytes as a command; returns the correlation id used.

        The AMQP timestamp is ``timestamp``, or now; none at all when not ``stamped``.
        """
        correlation_id = correlation_id or str(uuid.uuid4())
        if stamped and timestamp is None:
            timestamp = int(time.time())
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=2,
            reply_to=self.reply_queue if reply else None,
            correlation_id=correlation_id,
            timestamp=timestamp if stamped else None,
        )
        with self._lock:
            self._pub_channel.basic_publish(COMMANDS_EXCHANGE, routing_key, body, properties)
        return correlation_id

    def send(self, tenant: str, command_type: str, *, reply: bool = True, timestamp: int | None = None,
             stamped: bool = True, **fields: Any) -> dict[str, Any]:
        """Publish a contract command; returns its body (with the generated command_id)."""
        body = {"v": 1, "command_id": str(uuid.uuid4()), "type": command_type, **fields}
        self.publish_raw(f"{tenant}.{command_type}", json.dumps(body).encode(), reply=reply,
                         timestamp=timestamp, stamped=stamped)
        return body

    # ------------------------------------------------------------- waiting

    def reply_for(
        self, command_id: str | None, timeout: float = 10.0, *, correlation_id: str | None = None
    ) -> Received:
        """The reply to a command (others that arrive meanwhile are kept for later)."""
        return _wait_for(
            self.replies,
            lambda r: (
                (correlation_id is not None and r["_amqp"]["correlation_id"] == correlation_id)
                or (command_id is not None and r.get("command_id") == command_id)
            ),
            timeout,
        )

    def event(self, predicate: Any, timeout: float = 10.0) -> Received:
        return _wait_for(self.events, predicate, timeout)

    def call_events_until_terminal(self, call_id: str, timeout: float = 15.0) -> list[Received]:
        """Every event of a call up to and including its CDR event, in arrival order."""
        seen: list[Received] = []
        while True:
            event = self.event(lambda e: e.get("call_id") == call_id, timeout)
            seen.append(event)
            if event["type"] == "call.cdr":
                return seen

    def close(self) -> None:
        self._stop = True
        self._greenlet.join(timeout=2)
        for connection in (self._sub, self._pub):
            try:
                connection.close()
            except Exception:  # noqa: BLE001 - closing a probe must not fail a test or the demo
                log.debug("closing a probe connection failed", exc_info=True)


def _wait_for(queue: Queue[Received], predicate: Any, timeout: float) -> Received:
    """The first item matching ``predicate``; non-matching items go back, in order."""
    deadline = time.monotonic() + timeout
    skipped: list[Received] = []
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("nothing matching arrived in time")
            try:
                item = queue.get(timeout=remaining)
            except Empty:
                raise TimeoutError("nothing matching arrived in time") from None
            if predicate(item):
                return item
            skipped.append(item)
    finally:
        # Put the others back in front, in the order they came.
        rest = []
        while True:
            try:
                rest.append(queue.get_nowait())
            except Empty:
                break
        for item in skipped + rest:
            queue.put(item)
