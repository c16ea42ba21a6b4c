"""The RabbitMQ topology of CONTRACT section 2, declared on every connection.

Strategy: the topology is a plan of data (`topology_plan`), a list of declarations run
one after another on a channel of its own, in pika's asynchronous callback style. A
broker that refuses a quorum queue closes the channel; the declarer then opens a fresh
channel and declares that queue as a classic durable queue instead. Declaring again
with the same arguments is a no-op on the broker, so this runs on every connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pika.channel import Channel
from pika.connection import Connection
from pika.exceptions import AMQPError, ChannelClosedByBroker

from callworker.errors import BrokerUnavailable

__all__ = [
    "COMMANDS_EXCHANGE",
    "COMMANDS_QUEUE",
    "DEAD_QUEUE",
    "DLX_EXCHANGE",
    "EVENTS_EXCHANGE",
    "NODE_QUEUE_PREFIX",
    "Declaration",
    "declare_topology",
    "node_queue",
    "queue_arguments",
    "topology_plan",
]

COMMANDS_EXCHANGE = "callworker.commands"
EVENTS_EXCHANGE = "callworker.events"
DLX_EXCHANGE = "callworker.dlx"
COMMANDS_QUEUE = "callworker.commands"
DEAD_QUEUE = "callworker.commands.dead"
NODE_QUEUE_PREFIX = "callworker.node."

# Reply codes with which a broker refuses a quorum queue: the queue already exists
# with other arguments (406), or the broker does not know the queue type (540, 503).
_QUORUM_REFUSALS = frozenset({406, 503, 540})

log = logging.getLogger("callworker.bus")


def node_queue(node_id: str) -> str:
    """The queue of one worker node: commands for calls it holds are forwarded here."""
    if not node_id or len(node_id) > 200:
        raise ValueError("node_id must be 1-200 characters")
    return f"{NODE_QUEUE_PREFIX}{node_id}"


def queue_arguments(*, quorum: bool, dead_letters: bool) -> dict[str, Any]:
    """The x-arguments of a durable queue; the same plan always yields the same ones."""
    arguments: dict[str, Any] = {}
    if quorum:
        arguments["x-queue-type"] = "quorum"
    if dead_letters:
        arguments["x-dead-letter-exchange"] = DLX_EXCHANGE
    return arguments


@dataclass(frozen=True)
class Declaration:
    """One step of the topology: an exchange, a queue, or a binding."""

    kind: str  # "exchange" | "queue" | "bind"
    name: str
    source: str = ""  # bind: the exchange
    routing_key: str = ""  # bind: the pattern
    quorum: bool = False  # queue: try a quorum queue first
    dead_letters: bool = False  # queue: dead-letter to DLX_EXCHANGE


def topology_plan(node_id: str) -> list[Declaration]:
    """Every declaration, in order (exchanges before the queues bound to them)."""
    return [
        Declaration("exchange", COMMANDS_EXCHANGE),
        Declaration("exchange", EVENTS_EXCHANGE),
        Declaration("exchange", DLX_EXCHANGE),
        Declaration("queue", COMMANDS_QUEUE, quorum=True, dead_letters=True),
        Declaration("bind", COMMANDS_QUEUE, source=COMMANDS_EXCHANGE, routing_key="#"),
        Declaration("queue", DEAD_QUEUE),
        Declaration("bind", DEAD_QUEUE, source=DLX_EXCHANGE, routing_key="#"),
        Declaration("queue", node_queue(node_id), quorum=True, dead_letters=True),
    ]


def declare_topology(
    connection: Connection,
    node_id: str,
    on_done: Callable[[], None],
    on_error: Callable[[Exception], None],
) -> None:
    """Declare the whole topology on its own channel, then close that channel.

    Exactly one of `on_done()` or `on_error(BrokerUnavailable)` is called, in the
    connection's (hub) context.
    """
    _Declarer(connection, topology_plan(node_id), on_done, on_error).open_channel()


class _Declarer:
    """Runs a plan step by step; each pika callback starts the next step."""

    def __init__(
        self,
        connection: Connection,
        plan: list[Declaration],
        on_done: Callable[[], None],
        on_error: Callable[[Exception], None],
    ) -> None:
        self._connection = connection
        self._plan = plan
        self._on_done = on_done
        self._on_error = on_error
        self._channel: Channel | None = None
        self._step = 0
        self._classic: set[str] = set()  # queues the broker refused as quorum
        self._finished = False

    def open_channel(self) -> None:
        try:
            self._connection.channel(on_open_callback=self._on_channel_open)
        except AMQPError as exc:  # the connection is already closing
            self._fail(f"cannot open a channel: {exc!r}")

    def _on_channel_open(self, channel: Channel) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        self._run_step()

    def _run_step(self) -> None:
        if self._step == len(self._plan):
            self._finish()
            return
        step = self._plan[self._step]
        channel = self._channel
        assert channel is not None
        if step.kind == "exchange":
            channel.exchange_declare(
                step.name, exchange_type="topic", durable=True, callback=self._next
            )
        elif step.kind == "queue":
            quorum = step.quorum and step.name not in self._classic
            arguments = queue_arguments(quorum=quorum, dead_letters=step.dead_letters)
            channel.queue_declare(step.name, durable=True, arguments=arguments, callback=self._next)
        else:
            channel.queue_bind(step.name, step.source, routing_key=step.routing_key, callback=self._next)

    def _next(self, _frame: Any) -> None:
        self._step += 1
        self._run_step()

    def _on_channel_closed(self, _channel: Channel, reason: Exception) -> None:
        self._channel = None
        if self._finished:
            return
        step = self._plan[self._step]
        refused_quorum = (
            isinstance(reason, ChannelClosedByBroker)
            and reason.reply_code in _QUORUM_REFUSALS
            and step.kind == "queue"
            and step.quorum
            and step.name not in self._classic
        )
        if refused_quorum and self._connection.is_open:
            log.warning("broker refused quorum queue %s (%s); declaring it classic", step.name, reason)
            self._classic.add(step.name)
            self.open_channel()
            return
        self._fail(f"declaring {step.kind} {step.name} failed: {reason!r}")

    def _finish(self) -> None:
        self._finished = True
        if self._channel is not None and self._channel.is_open:
            self._channel.close()
        self._on_done()

    def _fail(self, message: str) -> None:
        if self._finished:
            return
        self._finished = True
        self._on_error(BrokerUnavailable(message))
