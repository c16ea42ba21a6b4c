"""RabbitMQ permissions pin a broker user to its tenant's routing keys (docs/broker-permissions.md).

The worker takes the tenant from the routing key only (CONTRACT section 3), so what
the broker lets a user publish is what the worker lets it do. These tests set up a
user for tenant ``acme`` with exactly the commands docs/broker-permissions.md gives
and show, against the real broker, what it can and cannot do.
"""

from __future__ import annotations

import secrets
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker

from callworker.bus.topology import (
    COMMANDS_EXCHANGE,
    COMMANDS_QUEUE,
    DEAD_QUEUE,
    DLX_EXCHANGE,
    EVENTS_EXCHANGE,
    queue_arguments,
)
from tests.conftest import AMQP_HOST

pytestmark = pytest.mark.integration

TENANT = "acme"


def tenant_user_commands(vhost: str, user: str, password: str, tenant: str) -> list[list[str]]:
    """The rabbitmqctl commands of docs/broker-permissions.md for one tenant's user (configure, write, read)."""
    own = rf"amq\.gen-.*|{tenant}\..*"
    return [
        ["add_user", user, password],
        ["set_permissions", "-p", vhost, user, f"^({own})$", rf"^(callworker\.commands|{own})$",
         rf"^(callworker\.events|{own})$"],
        ["set_topic_permissions", "-p", vhost, user, "callworker.commands", rf"^{tenant}\.", "^$"],
        ["set_topic_permissions", "-p", vhost, user, "callworker.events", "^$", rf"^{tenant}\."],
    ]


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@dataclass
class Broker:
    vhost: str
    user: str
    password: str

    def connect(self, user: str | None = None, password: str | None = None) -> pika.BlockingConnection:
        user, password = (user, password) if user else (self.user, self.password)
        return pika.BlockingConnection(pika.URLParameters(f"amqp://{user}:{password}@{AMQP_HOST}/{self.vhost}"))


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    """A fresh vhost with the worker's exchanges and queues, and acme's user set up as documented."""
    vhost = f"callworker-perm-{uuid.uuid4().hex[:10]}"
    user = f"{TENANT}-app-{uuid.uuid4().hex[:8]}"
    # Never starting with "-": rabbitmqctl would read such a password as an option.
    password = f"pw{secrets.token_urlsafe(18)}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        for command in tenant_user_commands(vhost, user, password, TENANT):
            rabbitmqctl(*command)
        setup = Broker(vhost, user, password)
        _declare_topology(setup)
        yield setup
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_user", user], check=False, capture_output=True, timeout=60)
        rabbitmqctl("delete_vhost", vhost)


def _declare_topology(broker: Broker) -> None:
    connection = broker.connect("guest", "guest")
    try:
        channel = connection.channel()
        for exchange in (COMMANDS_EXCHANGE, EVENTS_EXCHANGE, DLX_EXCHANGE):
            channel.exchange_declare(exchange, "topic", durable=True)
        channel.queue_declare(COMMANDS_QUEUE, durable=True, arguments=queue_arguments(quorum=False, dead_letters=True))
        channel.queue_bind(COMMANDS_QUEUE, COMMANDS_EXCHANGE, "#")
        channel.queue_declare(DEAD_QUEUE, durable=True)
        channel.queue_bind(DEAD_QUEUE, DLX_EXCHANGE, "#")
    finally:
        connection.close()


def _commands_queued(broker: Broker) -> list[str]:
    """Routing keys of everything in the intake queue (taken off it)."""
    connection = broker.connect("guest", "guest")
    try:
        channel = connection.channel()
        keys: list[str] = []
        while True:
            method, _props, _body = channel.basic_get(COMMANDS_QUEUE, auto_ack=True)
            if method is None:
                return keys
            keys.append(method.routing_key)
    finally:
        connection.close()


def refused(connection: pika.BlockingConnection, action: Callable[[BlockingChannel], Any]) -> str:
    """Run ``action`` on a fresh channel; the broker must close it with 403 ACCESS_REFUSED."""
    channel = connection.channel()
    channel.confirm_delivery()  # a refused publish is reported, not lost silently
    with pytest.raises(ChannelClosedByBroker) as caught:
        action(channel)
    assert caught.value.reply_code == 403, caught.value
    assert "ACCESS_REFUSED" in caught.value.reply_text
    return caught.value.reply_text


def publish(routing_key: str, exchange: str = COMMANDS_EXCHANGE) -> Callable[[BlockingChannel], None]:
    def action(channel: BlockingChannel) -> None:
        channel.basic_publish(exchange, routing_key, b'{"v": 1}', pika.BasicProperties(delivery_mode=2))

    return action


def bind_events(routing_key: str) -> Callable[[BlockingChannel], None]:
    def action(channel: BlockingChannel) -> None:
        channel.queue_bind(channel.queue_declare("", exclusive=True).method.queue, EVENTS_EXCHANGE, routing_key)

    return action


def test_a_tenant_user_publishes_its_own_commands_only(broker: Broker) -> None:
    connection = broker.connect()
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(COMMANDS_EXCHANGE, "acme.originate", b'{"v": 1}', pika.BasicProperties(delivery_mode=2))
        channel.basic_publish(COMMANDS_EXCHANGE, "acme.flashcall.create", b'{"v": 1}')
        for key in ("other.originate", "acmex.originate", "acme", "other.hangup.acme", "#"):
            text = refused(connection, publish(key))
            assert f"topic '{key}'" in text
    finally:
        connection.close()
    assert _commands_queued(broker) == ["acme.originate", "acme.flashcall.create"]


def test_a_tenant_user_binds_its_own_events_only(broker: Broker) -> None:
    connection = broker.connect()
    try:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(queue, EVENTS_EXCHANGE, "acme.#")
        channel.queue_bind(queue, EVENTS_EXCHANGE, "acme.call.answered.*")
        for key in ("other.#", "#", "*.call.#", "*.*.*.*", "acmex.#"):
            refused(connection, bind_events(key))
        # What the worker publishes for both tenants: acme's user gets acme's only.
        worker = broker.connect("guest", "guest")
        try:
            out = worker.channel()
            out.confirm_delivery()
            for key in ("other.call.answered.1", "acme.call.answered.2", "other.call.cdr.3"):
                out.basic_publish(EVENTS_EXCHANGE, key, b"{}")
        finally:
            worker.close()
        got = []
        while (message := channel.basic_get(queue, auto_ack=True))[0] is not None:
            got.append(message[0].routing_key)
        assert got == ["acme.call.answered.2"]
    finally:
        connection.close()


def test_a_tenant_user_cannot_reach_around_the_worker(broker: Broker) -> None:
    """No direct path into queues (default exchange), nobody else's commands, no dead letters."""
    connection = broker.connect()
    try:
        # The default exchange would reach a node's queue, and the routing-key header
        # that forwarded commands carry, directly.
        refused(connection, publish("callworker.node.fs1", exchange=""))
        refused(connection, publish("acme.call.answered.1", exchange=EVENTS_EXCHANGE))
        refused(connection, publish("acme.originate", exchange=DLX_EXCHANGE))
        refused(connection, lambda ch: ch.basic_get(COMMANDS_QUEUE))
        refused(connection, lambda ch: ch.basic_get(DEAD_QUEUE))
        refused(connection, lambda ch: ch.queue_bind(
            ch.queue_declare("", exclusive=True).method.queue, COMMANDS_EXCHANGE, "acme.#"))
        refused(connection, lambda ch: ch.queue_declare("callworker.node.fs1", durable=True))
        refused(connection, lambda ch: ch.queue_declare("other.events", durable=True))
        # What it may do: name its own queues after the tenant.
        channel = connection.channel()
        channel.queue_declare("acme.dashboard", auto_delete=True)
        channel.queue_bind("acme.dashboard", EVENTS_EXCHANGE, "acme.call.#")
    finally:
        connection.close()


def test_only_the_operators_user_publishes_admin_commands(broker: Broker) -> None:
    """The operator's user is a tenant user of the reserved tenant ``admin``: the same commands."""
    operator = f"ops-{uuid.uuid4().hex[:8]}"
    password = f"pw{secrets.token_urlsafe(18)}"
    for command in tenant_user_commands(broker.vhost, operator, password, "admin"):
        rabbitmqctl(*command)
    try:
        tenant = broker.connect()
        try:
            for key in ("admin.policy.set", "admin.policy.get", "admin.stats.get"):
                refused(tenant, publish(key))
        finally:
            tenant.close()
        ops = broker.connect(operator, password)
        try:
            channel = ops.channel()
            channel.confirm_delivery()
            channel.basic_publish(COMMANDS_EXCHANGE, "admin.policy.get", b'{"v": 1}')
            for key in ("acme.originate", "acme.policy.set", "adminx.policy.get"):
                refused(ops, publish(key))
            refused(ops, bind_events("acme.#"))  # nor does it read a tenant's events
        finally:
            ops.close()
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_user", operator], check=False, capture_output=True, timeout=60)
    assert _commands_queued(broker) == ["admin.policy.get"]
