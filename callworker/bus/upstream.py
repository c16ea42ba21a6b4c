"""A contract client for operator tools: commands with their replies, and a live event feed.

Strategy: one pika BlockingConnection, driven only by the greenlet that uses it (the
command line's main one). Nothing runs in the background: ``reply`` and
``next_event`` pump the connection while they wait, which also keeps its heartbeats
going. Both queues are server-named and exclusive, so they vanish with the connection
and no other client can read them. The exchanges are the worker's: they are not
declared here (an operator's broker user needs no right to configure them), and
their absence says that no worker has run on this broker yet.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import pika
from pika.exceptions import (
    AMQPError,
    ChannelClosedByBroker,
    NackError,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
    UnroutableError,
)

from callworker.bus.topology import COMMANDS_EXCHANGE, EVENTS_EXCHANGE
from callworker.errors import BrokerUnavailable, PublishFailed

__all__ = ["Upstream"]

log = logging.getLogger("callworker.upstream")

# How long one pump of the connection may block: short enough for a caller's loop
# (a live table's clock) to come round often.
_PUMP_S = 0.2
_NOT_FOUND = 404


def _why(exc: BaseException) -> str:
    """A one-line reason from a pika exception; pika's messages hold no password."""
    if isinstance(exc, ChannelClosedByBroker) and exc.reply_code == _NOT_FOUND:
        return f"{exc.reply_text} (has a worker run on this broker and vhost yet?)"
    if isinstance(exc, ProbableAuthenticationError):
        return "the broker refused the user name or password"
    if isinstance(exc, ProbableAccessDeniedError):
        return "the broker refused access to the vhost"
    name = type(exc).__name__
    text = (str(exc).strip() or repr(exc)).splitlines()[0]
    # pika repeats the class name inside the text: "AMQPConnectionError: (...)".
    return f"{name}: {text.removeprefix(name + ': ')}"


def _where(params: pika.URLParameters) -> str:
    """host:port/vhost, never the credentials."""
    return f"{params.host}:{params.port}/{params.virtual_host}"


def _decode(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


class Upstream:
    """Publishes commands as an upstream app does and collects their replies and events.

    ``bindings`` are routing keys on ``callworker.events`` (``acme.call.#``); the
    queue is bound before the constructor returns, so an event published after it
    is never missed. Raises BrokerUnavailable when RabbitMQ cannot be used.
    """

    def __init__(self, url: str, *, bindings: Sequence[str] = ()) -> None:
        self._replies: dict[str, dict[str, Any]] = {}
        self._events: deque[dict[str, Any]] = deque()
        try:
            params = pika.URLParameters(url)
        except Exception:  # noqa: BLE001 - the parser's message may repeat the URL, password included
            raise BrokerUnavailable("the RabbitMQ URL cannot be parsed") from None
        try:
            self._connection = pika.BlockingConnection(params)
            self._channel = self._connection.channel()
            self._channel.confirm_delivery()
            self.reply_queue: str = self._channel.queue_declare("", exclusive=True).method.queue
            self._channel.basic_consume(self.reply_queue, self._on_reply, auto_ack=True)
            if bindings:
                events = self._channel.queue_declare("", exclusive=True).method.queue
                for key in bindings:
                    self._channel.queue_bind(events, EVENTS_EXCHANGE, routing_key=key)
                self._channel.basic_consume(events, self._on_event, auto_ack=True)
        except AMQPError as exc:
            self.close()
            raise BrokerUnavailable(f"RabbitMQ at {_where(params)}: {_why(exc)}") from None

    # ------------------------------------------------------------ consuming

    def _on_reply(self, _channel: Any, _method: Any, properties: Any, body: bytes) -> None:
        reply = _decode(body)
        if reply is None or properties.correlation_id is None:
            log.warning("ignored a reply that is not a JSON object with a correlation id")
            return
        self._replies[properties.correlation_id] = reply

    def _on_event(self, _channel: Any, _method: Any, _properties: Any, body: bytes) -> None:
        event = _decode(body)
        if event is None:
            log.warning("ignored an event that is not a JSON object")
            return
        self._events.append(event)

    def _pump(self, seconds: float) -> None:
        try:
            self._connection.process_data_events(time_limit=max(0.0, seconds))
        except AMQPError as exc:
            raise BrokerUnavailable(f"RabbitMQ connection lost: {_why(exc)}") from None

    # ------------------------------------------------------------ commands

    def send(
        self, tenant: str, command_type: str, fields: dict[str, Any], *, command_id: str | None = None
    ) -> tuple[dict[str, Any], str]:
        """Publish one command with ``reply_to``; returns its body and the correlation id.

        The publish is confirmed by the broker and mandatory: a command no queue takes
        raises PublishFailed at once instead of waiting for a reply that cannot come.
        """
        body = {"v": 1, "command_id": command_id or str(uuid.uuid4()), "type": command_type, **fields}
        correlation_id = str(uuid.uuid4())
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=2,
            reply_to=self.reply_queue,
            correlation_id=correlation_id,
            timestamp=int(time.time()),
        )
        routing_key = f"{tenant}.{command_type}"
        try:
            self._channel.basic_publish(
                COMMANDS_EXCHANGE, routing_key, json.dumps(body).encode(), properties, mandatory=True
            )
        except UnroutableError:
            raise PublishFailed(f"no queue takes {routing_key}: is the worker's topology declared?") from None
        except NackError:
            raise PublishFailed(f"RabbitMQ refused {routing_key}") from None
        except AMQPError as exc:
            raise BrokerUnavailable(f"RabbitMQ: {_why(exc)}") from None
        return body, correlation_id

    def reply(self, correlation_id: str, timeout: float) -> dict[str, Any] | None:
        """The reply to the command published with ``correlation_id``, or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        while correlation_id not in self._replies:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._pump(min(remaining, _PUMP_S))
        return self._replies.pop(correlation_id)

    def ask(
        self, tenant: str, command_type: str, fields: dict[str, Any], timeout: float
    ) -> dict[str, Any] | None:
        """``send`` then ``reply``: the reply, or None when none came within ``timeout``."""
        _body, correlation_id = self.send(tenant, command_type, fields)
        return self.reply(correlation_id, timeout)

    # ------------------------------------------------------------ events

    def next_event(self, timeout: float) -> dict[str, Any] | None:
        """The next event in arrival order, or None when none came within ``timeout``."""
        deadline = time.monotonic() + timeout
        while not self._events:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._pump(min(remaining, _PUMP_S))
        return self._events.popleft()

    # ------------------------------------------------------------ life

    def close(self) -> None:
        connection = getattr(self, "_connection", None)
        if connection is None or connection.is_closed:
            return
        try:
            connection.close()
        except AMQPError:
            log.debug("closing the connection failed", exc_info=True)

    def __enter__(self) -> Upstream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
