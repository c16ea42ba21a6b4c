"""RabbitMQ for callworker: topology, a reconnecting consumer and confirmed publisher,
and the outbox relay. Knows neither FreeSWITCH nor the database."""

from callworker.bus.client import AmqpClient, Delivery
from callworker.bus.relay import OutboxItem, OutboxRelay
from callworker.bus.topology import (
    COMMANDS_EXCHANGE,
    COMMANDS_QUEUE,
    DEAD_QUEUE,
    DLX_EXCHANGE,
    EVENTS_EXCHANGE,
    declare_topology,
    node_queue,
)

__all__ = [
    "COMMANDS_EXCHANGE",
    "COMMANDS_QUEUE",
    "DEAD_QUEUE",
    "DLX_EXCHANGE",
    "EVENTS_EXCHANGE",
    "AmqpClient",
    "Delivery",
    "OutboxItem",
    "OutboxRelay",
    "declare_topology",
    "node_queue",
]
