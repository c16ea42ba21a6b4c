"""The load generator: an upstream app speaking only the contract, built for rate.

Strategy: one pika ``GeventConnection`` on this process's hub. Commands are
published from a pacing greenlet at a fixed rate (open loop: a late tick sends
what is due, so a slow worker cannot slow the offered load down). Replies and
events arrive on two private queues consumed without acks; the callbacks (hub
greenlet, never blocking) stamp the receive time, decode the JSON and keep
small tuples for the analysis afterwards.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import gevent
import gevent.event
import pika
from pika.adapters.gevent_connection import GeventConnection, _GeventSelectorIOLoop

from callworker.bus.topology import COMMANDS_EXCHANGE, EVENTS_EXCHANGE

__all__ = ["CallLog", "Driver", "EventSeen", "ReplySeen", "pace"]

_IOLOOP: _GeventSelectorIOLoop | None = None


def _ioloop() -> _GeventSelectorIOLoop:
    # One loop for the process: pika's loops are only freed by ioloop.close(), which
    # would take the gevent hub's loop down with it.
    global _IOLOOP
    if _IOLOOP is None:
        _IOLOOP = _GeventSelectorIOLoop(gevent.get_hub())
    return _IOLOOP


@dataclass(slots=True)
class EventSeen:
    type: str
    seq: int
    event_id: str
    occurred_at: str
    received: float  # time.time() at the driver


@dataclass(slots=True)
class ReplySeen:
    ok: bool
    received: float
    error: str | None


@dataclass
class CallLog:
    """What the driver saw of one call (or one command without a call)."""

    sent: float
    events: list[EventSeen] = field(default_factory=list)
    reply: ReplySeen | None = None


class Driver:
    def __init__(self, amqp_url: str, tenant: str, *, bind_events: bool = True) -> None:
        self.tenant = tenant
        self._params = pika.URLParameters(amqp_url)
        self._bind_events = bind_events
        self._ready = gevent.event.Event()
        self._failed: BaseException | None = None
        self._connection: GeventConnection | None = None
        self._pub: Any = None
        self.reply_queue = ""
        self.calls: dict[str, CallLog] = {}  # call_id -> log
        self.by_command: dict[str, str] = {}  # command_id (= correlation id) -> call_id
        self.event_count = 0
        self.reply_count = 0
        self.on_event: Callable[[str, EventSeen], None] | None = None

    # ------------------------------------------------------------------ connection

    def start(self, timeout: float = 15.0) -> Driver:
        self._connection = GeventConnection(
            self._params, on_open_callback=self._on_open,
            on_open_error_callback=self._on_error, on_close_callback=self._on_closed,
            custom_ioloop=_ioloop())
        if not self._ready.wait(timeout) or self._failed is not None:
            raise RuntimeError(f"driver could not connect: {self._failed!r}")
        return self

    def _on_error(self, _connection: Any, exc: BaseException) -> None:
        self._failed = exc
        self._ready.set()

    def _on_closed(self, _connection: Any, reason: BaseException) -> None:
        if not self._ready.is_set():
            self._on_error(_connection, reason)

    def _on_open(self, connection: GeventConnection) -> None:
        connection.channel(on_open_callback=self._on_pub_channel)

    def _on_pub_channel(self, channel: Any) -> None:
        self._pub = channel
        channel.exchange_declare(COMMANDS_EXCHANGE, "topic", durable=True)
        channel.exchange_declare(EVENTS_EXCHANGE, "topic", durable=True,
                                 callback=lambda _f: self._connection.channel(  # type: ignore[union-attr]
                                     on_open_callback=self._on_sub_channel))

    def _on_sub_channel(self, channel: Any) -> None:
        channel.queue_declare("", exclusive=True, callback=partial(self._on_reply_queue, channel))

    def _on_reply_queue(self, channel: Any, frame: Any) -> None:
        self.reply_queue = frame.method.queue
        channel.basic_consume(self.reply_queue, self._on_reply, auto_ack=True)
        if not self._bind_events:
            self._ready.set()
            return
        channel.queue_declare("", exclusive=True, callback=partial(self._on_event_queue, channel))

    def _on_event_queue(self, channel: Any, frame: Any) -> None:
        queue = frame.method.queue
        channel.queue_bind(queue, EVENTS_EXCHANGE, routing_key=f"{self.tenant}.#",
                           callback=lambda _f: self._consume_events(channel, queue))

    def _consume_events(self, channel: Any, queue: str) -> None:
        channel.basic_consume(queue, self._on_event, auto_ack=True)
        self._ready.set()

    def close(self) -> None:
        connection = self._connection
        if connection is not None and connection.is_open:
            connection.close()

    # ------------------------------------------------------------------ traffic

    def send(self, command_type: str, call_id: str | None = None, **fields: Any) -> str:
        """Publish one command; returns its command_id (also the correlation id)."""
        command_id = str(uuid.uuid4())
        body = {"v": 1, "command_id": command_id, "type": command_type, **fields}
        if call_id is not None:
            body["call_id"] = call_id
        key = call_id or command_id
        self.by_command[command_id] = key
        now = time.time()
        self.calls.setdefault(key, CallLog(sent=now)).sent = now
        properties = pika.BasicProperties(
            content_type="application/json", delivery_mode=2, reply_to=self.reply_queue,
            correlation_id=command_id, timestamp=int(now))
        self._pub.basic_publish(COMMANDS_EXCHANGE, f"{self.tenant}.{command_type}",
                                json.dumps(body).encode(), properties)
        return command_id

    def originate(self, number: str) -> str:
        call_id = str(uuid.uuid4())
        self.send("originate", call_id=call_id, destination_number=number,
                  caller_id_number="+15550000000", caller_id_name="bench")
        return call_id

    def request(self, routing_key: str, body: bytes) -> str:
        """A bare request to a queue (default exchange), answered to our reply queue."""
        key = str(uuid.uuid4())
        self.by_command[key] = key
        now = time.time()
        self.calls[key] = CallLog(sent=now)
        properties = pika.BasicProperties(
            content_type="application/json", delivery_mode=2, reply_to=self.reply_queue,
            correlation_id=key, timestamp=int(now))
        self._pub.basic_publish("", routing_key, body, properties)
        return key

    def _on_reply(self, _ch: Any, _method: Any, props: Any, body: bytes) -> None:
        received = time.time()
        self.reply_count += 1
        key = self.by_command.get(props.correlation_id or "")
        if key is None:
            return
        data = json.loads(body)
        error = None if data.get("ok") else (data.get("error") or {}).get("code", "?")
        self.calls[key].reply = ReplySeen(bool(data.get("ok")), received, error)

    def _on_event(self, _ch: Any, _method: Any, _props: Any, body: bytes) -> None:
        received = time.time()
        self.event_count += 1
        data = json.loads(body)
        call_id = data.get("call_id")
        seen = EventSeen(data["type"], data["seq"], data["event_id"], data["occurred_at"], received)
        log = self.calls.get(call_id)
        if log is None:
            log = self.calls[call_id] = CallLog(sent=float("nan"))
        log.events.append(seen)
        if self.on_event is not None:
            self.on_event(call_id, seen)


def pace(rate: float, seconds: float, send: Callable[[int], None]) -> int:
    """Call ``send(i)`` at ``rate`` per second for ``seconds``; returns how many were sent."""
    total = int(rate * seconds)
    start = time.monotonic()
    sent = 0
    while sent < total:
        due = min(total, int((time.monotonic() - start) * rate) + 1)
        while sent < due:
            send(sent)
            sent += 1
        wait = start + sent / rate - time.monotonic()
        if wait > 0:
            gevent.sleep(wait)
    return sent
