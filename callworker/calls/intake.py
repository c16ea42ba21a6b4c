"""The unit of work for one command delivery: decode, check, execute, commit, ack.

Strategy: pika hands deliveries to a gevent queue (its callbacks must never
block); a pool of worker greenlets runs ``Intake.handle`` on each. A delivery is
acknowledged only after its outcome is durable: the reply committed in the
database (and so in the outbox), or, for a command that cannot be executed at
all, the dead-letter and the error reply confirmed by the broker. While
FreeSWITCH is away, commands that need it wait (unacknowledged) until it is back
or they expire; a database outage makes them wait the same way.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import gevent
from gevent.event import Event as Flag
from gevent.queue import Queue
from sqlalchemy.engine import Engine

from callworker.backoff import Backoff
from callworker.bus.client import AmqpClient, Delivery
from callworker.bus.topology import DLX_EXCHANGE, NODE_QUEUE_PREFIX, node_queue
from callworker.calls.service import CallService, Delivered
from callworker.contract import (
    TENANT_RE,
    Command,
    ContractError,
    ErrorCode,
    decode_command,
    encode_json,
    is_expired,
    reply_error,
    reply_ok,
    utcnow,
)
from callworker.errors import (
    AlreadyStored,
    BrokerUnavailable,
    FreeSwitchUnavailable,
    HeldElsewhere,
    PublishFailed,
    StoreUnavailable,
)
from callworker.store import lookup_command

__all__ = ["Intake", "ROUTING_KEY_HEADER"]

log = logging.getLogger("callworker.intake")

# A command forwarded to the node that holds its call keeps what the default
# exchange would lose: its routing key, reply_to and publish time. The publish time
# (the original AMQP timestamp, or the first receipt when it had none; epoch
# seconds) is what the owner measures the command's age from: forwarding stamps a
# timestamp of its own, which would let every forward restart the maximum age.
ROUTING_KEY_HEADER = "x-callworker-routing-key"
REPLY_TO_HEADER = "x-callworker-reply-to"
PUBLISHED_AT_HEADER = "x-callworker-published-at"
ERROR_HEADER = "x-callworker-error"
PUBLISH_TIMEOUT_S = 10.0


class Intake:
    def __init__(
        self,
        *,
        bus: AmqpClient,
        engine: Engine,
        service: CallService,
        freeswitch_ready: Callable[[float], bool],
        max_age_s: float,
        workers: int,
        extra_handlers: dict[str, Callable[[Any, Delivered], dict[str, Any]]] | None = None,
        owner_of: Callable[[Command], str | None] | None = None,
    ) -> None:
        self._bus = bus
        self._engine = engine
        self._service = service
        self._freeswitch_ready = freeswitch_ready
        self._max_age_s = max_age_s
        self._workers = workers
        self._extra = dict(extra_handlers or {})
        # Which other node must execute a command (None: this one).
        self._owner_of = owner_of or (lambda command: None)
        self._queue: Queue[Delivery] = Queue()
        self._pool: list[gevent.Greenlet] = []
        self._inflight: dict[tuple[str, str], Flag] = {}
        self._busy = 0
        self.handled = 0

    # ------------------------------------------------------------------ life

    def on_delivery(self, delivery: Delivery) -> None:
        """pika's callback (hub greenlet): hand over, never block."""
        self._queue.put_nowait(delivery)

    def start(self) -> None:
        self._pool = [gevent.spawn(self._work) for _ in range(self._workers)]

    def drain(self, timeout: float) -> bool:
        """Wait until every delivery taken has been handled (for a graceful stop)."""
        with gevent.Timeout(timeout, False):
            while self._busy or not self._queue.empty():
                gevent.sleep(0.02)
            return True
        return False

    def stop(self) -> None:
        gevent.killall(self._pool, timeout=2)
        self._pool = []

    def _work(self) -> None:
        while True:
            delivery = self._queue.get()
            self._busy += 1
            try:
                self.handle(delivery)
            except Exception:
                log.exception("command delivery left unacknowledged after an unexpected error")
            finally:
                self._busy -= 1
                self.handled += 1

    # ------------------------------------------------------------ the unit

    def add_handlers(self, handlers: dict[str, Callable[[Any, Delivered], dict[str, Any]]]) -> None:
        self._extra.update(handlers)

    def handle(self, delivery: Delivery) -> None:
        received_at = utcnow()
        delivery = _unforwarded(delivery)
        routing_key = delivery.routing_key
        if delivery.reply_to and not _reply_to_allowed(delivery.reply_to, routing_key):
            # Answering there would drop messages into a queue of somebody else's.
            error = ContractError(
                ErrorCode.VALIDATION_ERROR,
                "reply_to must be a server-named queue (amq.gen-…), direct reply-to, "
                "or a queue named after the tenant (<tenant>.…)",
                details={"field": "reply_to"},
            )
            self._refuse(dataclasses.replace(delivery, reply_to=None), routing_key, error)
            return
        try:
            command = decode_command(routing_key, delivery.body)
        except ContractError as error:
            self._refuse(delivery, routing_key, error)
            return
        to = Delivered(delivery.reply_to, delivery.correlation_id)
        key = (command.tenant, command.command_id)
        backoff = Backoff(0.1, 5.0)
        while True:
            try:
                if self._run_once(command, delivery, routing_key, to, key, received_at):
                    return
            except StoreUnavailable:
                log.warning("database unavailable; command %s waits", command.command_id)
            except FreeSwitchUnavailable:
                self._freeswitch_ready(min(self._max_age_s, 5.0))
                continue
            gevent.sleep(backoff.next())

    def _run_once(
        self,
        command: Command,
        delivery: Delivery,
        routing_key: str,
        to: Delivered,
        key: tuple[str, str],
        received_at: datetime,
    ) -> bool:
        """One attempt; True when the delivery is settled (acked)."""
        if self._expired(command, delivery, received_at):
            error = ContractError(
                ErrorCode.COMMAND_EXPIRED,
                "the command expired before it could be executed",
                command_id=command.command_id,
                command_type=command.type,
            )
            self._refuse(delivery, routing_key, error)
            return True
        while (running := self._inflight.get(key)) is not None:
            running.wait()  # the same command is being executed: its reply is ours
        # Claim the key before anything yields (the lookup below does), so a copy
        # of this command delivered meanwhile waits above instead of executing too.
        flag = self._inflight[key] = Flag()
        try:
            return self._run_claimed(command, delivery, routing_key, to, received_at)
        finally:
            del self._inflight[key]
            flag.set()

    def _run_claimed(
        self,
        command: Command,
        delivery: Delivery,
        routing_key: str,
        to: Delivered,
        received_at: datetime,
    ) -> bool:
        """The attempt, once no other copy of the command is in hand; True when settled."""
        # An originate's commit is its own lookup (written fresh: a command id or
        # call id seen before refuses it); every other command is looked up first,
        # and so is an originate while FreeSWITCH is away: a copy of one already
        # executed gets its first reply now instead of waiting for FreeSWITCH.
        if not self._service.checks_on_commit(command) or not self._freeswitch_ready(0):
            lookup = lookup_command(self._engine, command.tenant, command.command_id, None)
            if lookup.stored is not None:
                self._replay(command, to, lookup.stored)
                self._bus.ack(delivery)
                return True
        owner = None if _from_node_queue(delivery) else self._owner_of(command)
        if owner is not None:
            self._forward(delivery, owner, received_at)
            return True
        if self._service.needs_freeswitch(command.type) and not self._freeswitch_ready(0):
            raise FreeSwitchUnavailable("FreeSWITCH is not connected")
        try:
            self._execute(command, to)
        except AlreadyStored:
            return self._settle_taken(command, delivery, routing_key, to)
        except HeldElsewhere as moved:
            if _from_node_queue(delivery):
                raise  # owners disagree: never bounce between nodes
            self._forward(delivery, moved.node, received_at)
            return True
        except ContractError as error:
            self._refuse(delivery, routing_key, error)
            return True
        except Exception as error:
            if isinstance(error, (StoreUnavailable, FreeSwitchUnavailable)):
                raise
            log.exception("command %s (%s) failed", command.command_id, command.type)
            internal = ContractError(
                ErrorCode.INTERNAL_ERROR,
                "the command could not be executed",
                command_id=command.command_id,
                command_type=command.type,
            )
            self._refuse(delivery, routing_key, internal, dead_letter=True)
            return True
        self._bus.ack(delivery)
        return True

    def _settle_taken(self, command: Command, delivery: Delivery, routing_key: str, to: Delivered) -> bool:
        """A commit refused as seen before: answer as its first execution did, or refuse the call id."""
        lookup = lookup_command(
            self._engine, command.tenant, command.command_id, self._service.call_id_to_check(command)
        )
        if lookup.stored is not None:
            self._replay(command, to, lookup.stored)
        elif lookup.call_id_taken:
            self._refuse(delivery, routing_key, self._service.call_id_in_use(command))
            return True
        else:
            # What refused it is gone already (rolled back elsewhere): try again.
            raise StoreUnavailable("the commit was refused for a key no longer stored")
        self._bus.ack(delivery)
        return True

    def _forward(self, delivery: Delivery, owner: str, received_at: datetime) -> None:
        """Hand the command to the node that holds its call (its own durable queue).

        Only the owner can act on its FreeSWITCH and only it publishes the call's
        events; the owner answers the reply_to itself, and measures the command's
        age from when it was first published (or received), not from this forward.
        """
        headers = dict(delivery.headers)
        headers[ROUTING_KEY_HEADER] = delivery.routing_key
        if delivery.reply_to:
            headers[REPLY_TO_HEADER] = delivery.reply_to
        published = _published_at(delivery.timestamp) or received_at
        # Whole seconds, as AMQP timestamps are: rounded down, the command only looks older.
        headers[PUBLISHED_AT_HEADER] = int(published.timestamp())
        self._bus.publish_and_wait(
            "",
            node_queue(owner),
            delivery.body,
            timeout=PUBLISH_TIMEOUT_S,
            headers=headers,
            message_id=delivery.message_id,
            correlation_id=delivery.correlation_id,
            content_type=delivery.content_type or "application/json",
        )
        log.info("command forwarded to node %s", owner)
        self._bus.ack(delivery)

    def _execute(self, command: Command, to: Delivered) -> dict[str, Any]:
        handler = self._extra.get(command.type)
        if handler is not None:
            return handler(command, to)
        if not self._service.handles(command.type):
            raise ContractError(
                ErrorCode.UNKNOWN_COMMAND,
                "this worker does not execute that command type",
                command_id=command.command_id,
                command_type=command.type,
            )
        return self._service.execute(command, to)

    def _expired(self, command: Command, delivery: Delivery, received_at: datetime) -> bool:
        published = _published_at(delivery.timestamp)
        return is_expired(
            command,
            now=utcnow(),
            published_at=published,
            received_at=received_at,
            max_age_s=self._max_age_s,
        )

    def _replay(self, command: Command, to: Delivered, stored: dict[str, Any]) -> None:
        """A command seen before: answer with its first reply, execute nothing."""
        reply = stored.get("reply")
        if reply is None:
            # Interrupted between placing the call and committing the reply: the
            # call exists (or is being reconciled); never dial it again.
            reply = reply_ok(
                command.command_id, command.type, {"call_id": stored.get("call_id"), "status": "initiated"}
            )
            self._service.finish(command, to, reply, call_id=stored.get("call_id"))
            return
        self._service.finish(command, to, reply, call_id=stored.get("call_id"))

    def _refuse(
        self,
        delivery: Delivery,
        routing_key: str,
        error: ContractError,
        *,
        dead_letter: bool | None = None,
    ) -> None:
        """Answer with the error and, for bad commands, dead-letter them; then ack."""
        try:
            if dead_letter if dead_letter is not None else error.dead_letter:
                headers = dict(delivery.headers)
                headers[ERROR_HEADER] = str(error)
                headers[ROUTING_KEY_HEADER] = routing_key  # the true one, not a publisher's
                self._bus.publish_and_wait(
                    DLX_EXCHANGE,
                    _dead_letter_key(routing_key),
                    delivery.body,
                    timeout=PUBLISH_TIMEOUT_S,
                    headers=headers,
                    message_id=delivery.message_id,
                    content_type=delivery.content_type or "application/octet-stream",
                )
            if delivery.reply_to:
                self._bus.publish_and_wait(
                    "",
                    delivery.reply_to,
                    encode_json(reply_error(error)),
                    timeout=PUBLISH_TIMEOUT_S,
                    correlation_id=delivery.correlation_id,
                )
        except (BrokerUnavailable, PublishFailed):
            log.warning("could not dead-letter or answer a refused command; it will come back")
            return
        log.warning("command refused: %s", error)
        self._bus.ack(delivery)


def _published_at(timestamp: int | None) -> datetime | None:
    """The AMQP timestamp as a time; None when absent or past what a datetime holds."""
    if not timestamp:
        return None
    try:
        return datetime.fromtimestamp(timestamp, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None  # the publisher's clock says nothing usable: age counts from receipt


def _reply_to_allowed(reply_to: str, routing_key: str) -> bool:
    tenant = routing_key.split(".", 1)[0]
    return reply_to.startswith(("amq.gen-", "amq.rabbitmq.reply-to")) or (
        TENANT_RE.match(tenant) is not None and reply_to.startswith(f"{tenant}.")
    )


def _from_node_queue(delivery: Delivery) -> bool:
    return delivery.queue.startswith(NODE_QUEUE_PREFIX)


def _unforwarded(delivery: Delivery) -> Delivery:
    """A forwarded delivery as it was first published (routing key, reply_to, publish time)."""
    headers = delivery.headers
    # Only a worker forwards (to a node queue); on the shared queue these headers are
    # the publisher's own and would let it name another tenant.
    if not _from_node_queue(delivery) or ROUTING_KEY_HEADER not in headers:
        return delivery
    stamp = headers.get(PUBLISHED_AT_HEADER)
    first_published = stamp if isinstance(stamp, int) and not isinstance(stamp, bool) and stamp > 0 else None
    return dataclasses.replace(
        delivery,
        routing_key=str(headers[ROUTING_KEY_HEADER]),
        reply_to=delivery.reply_to or _text(headers.get(REPLY_TO_HEADER)),
        # The age counts from the first publish, not from the forward's own timestamp.
        timestamp=first_published or delivery.timestamp,
    )


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value) if value is not None else None


def _dead_letter_key(routing_key: str) -> str:
    # The routing key is whatever the publisher sent; keep it printable and short.
    cleaned = "".join(ch if 32 < ord(ch) < 127 else "_" for ch in routing_key)[:255]
    return cleaned or "unknown"
