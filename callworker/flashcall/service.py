"""The flash-call service: ``flashcall.create``, and the wiring of verify, observer and sweeper.

Strategy: ``create`` checks what needs no lock (code shape, allow-list, the
policy's limits and permission, the flash-call limits as the database counts
them, and the resend cooldown against the orders this node holds or is
opening), then opens the order and the call that carries the code as new rows
(``Journal.open``): the order with ``flashcall.created``, the call with
``call.initiated``, the command recorded as executing with its reply, and the
call counted toward the limits, whose caps that same write enforces. Only
then is the originate sent (with the real caller ID, prefix + code), the
phone's older open orders on this node superseded (a journal operation), and
the reply committed: a redelivered command finds its record and never dials
again.

The clear code lives only in memory, in the originate command, and in the reply
that returns it (``return_code`` or a supplied code). That reply is published
straight to the broker after the command record (which keeps the reply without
``code.value``) is committed, so it never passes through the database; if the
broker cannot take it, the reply without the code goes through the outbox.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from callworker.bus.client import AmqpClient
from callworker.calls.journal import Journal, Unit
from callworker.calls.record import CallRecord
from callworker.calls.service import Delivered
from callworker.calls.states import Status
from callworker.config import Settings
from callworker.contract import (
    ContractError,
    ErrorCode,
    FlashcallCreateCommand,
    FlashcallVerifyCommand,
    call_snapshot,
    encode_json,
    reply_ok,
    to_iso,
    utcnow,
)
from callworker.errors import (
    BrokerUnavailable,
    ConfigError,
    FreeSwitchError,
    FreeSwitchUnavailable,
    OverLimit,
    PublishFailed,
)
from callworker.esl import builders
from callworker.esl.port import FreeSwitchPort
from callworker.flashcall.book import OrderBook, event_data
from callworker.flashcall.codes import code_hmac, generate_code, is_valid_code, pick_prefix
from callworker.flashcall.limits import DestinationPolicy, Limits, Refusal
from callworker.flashcall.orders import Order, OrderStatus, close, phone_key
from callworker.flashcall.replies import commit_reply, contract_error, finish, refusals_as_replies
from callworker.flashcall.verify import Verifier
from callworker.flashcall.watch import CallWatch, Sweeper
from callworker.policy.limits import CallLimits, unjudged
from callworker.policy.limits import Refusal as PolicyRefusal
from callworker.store import OrderHistory, get_order, latest_order_for_phone, order_history
from callworker.store.privacy import Subject
from callworker.store.usage import Delta

__all__ = ["FlashcallService"]

log = logging.getLogger("callworker.flashcall")

REPLY_PUBLISH_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class _Draft:
    order: Order
    call: CallRecord
    dial: str  # the originate command: it holds the code, so it is never logged
    code: str


class FlashcallService:
    """Handlers for the intake, the journal observer, and the life of the order book."""

    def __init__(
        self, *, journal: Journal, port: FreeSwitchPort, engine: Engine, bus: AmqpClient,
        settings: Settings, limits: CallLimits | None = None,
    ) -> None:
        self._journal = journal
        # The policy's limits (None: flash calls are neither checked nor counted by them).
        self._call_limits = limits
        # Creates of this node being opened, by (tenant, phone key): the cooldown sees them.
        self._opening: dict[tuple[str, str], datetime] = {}
        self._port = port
        self._engine = engine
        self._bus = bus
        self._node = settings.node_id
        self._key = settings.flashcall_key()
        self._code_length = settings.flashcall_code_length
        self._prefixes = settings.flashcall_cid_prefixes
        self._ttl = timedelta(seconds=settings.flashcall_ttl_s)
        self._max_attempts = settings.flashcall_max_attempts
        self._ring_timeout_s = settings.flashcall_ring_timeout_s
        self._gateway = settings.flashcall_gateway or settings.default_gateway
        if self._gateway not in settings.gateways:
            raise ConfigError("the flash-call gateway is not one of the configured gateways")
        self._limits = Limits(
            cooldown_s=settings.flashcall_resend_cooldown_s, window_s=settings.flashcall_window_s,
            max_per_phone=settings.flashcall_max_per_phone_per_window,
            max_per_tenant=settings.flashcall_max_per_tenant_per_window,
        )
        self._destinations = DestinationPolicy(settings.flashcall_allowed_destinations)
        self.book = OrderBook(engine, self._node)
        self.watch = CallWatch(
            journal=journal, port=port, book=self.book, ring_ms=settings.flashcall_ring_ms
        )
        self.sweeper = Sweeper(journal=journal, book=self.book)
        self._verifier = Verifier(
            journal=journal, engine=engine, book=self.book, node=self._node, key=self._key
        )
        # The journal observer to register: journal.observers.append(service.on_call_event).
        self.on_call_event = self.watch.on_call_event

    # ------------------------------------------------------------------ life

    def load(self) -> None:
        """Take back this node's open orders (call after ``journal.load()``)."""
        self.book.load()

    def start(self) -> None:
        self.sweeper.start()

    def stop(self) -> None:
        self.sweeper.stop()
        self.watch.stop()

    def rearm(self) -> int:
        """After a reconciliation: drop again the flash calls whose drop was lost."""
        return self.watch.rearm()

    def privacy_holder(
        self,
    ) -> tuple[Callable[[str], list[tuple[str, str]]], Callable[[Unit, Subject], dict[str, int]]]:
        """What the privacy erasure needs of the open orders this node holds (see calls/privacy.py)."""

        def values(tenant: str) -> list[tuple[str, str]]:
            held = [o for o in self.book.orders.values() if o.tenant == tenant]
            return [("phone", o.phone) for o in held] + [("user", o.user_id) for o in held if o.user_id]

        def scrub(unit: Unit, subject: Subject) -> dict[str, int]:
            erased = 0
            for order in [o for o in self.book.orders.values() if o.tenant == subject.tenant]:
                if subject.kind == "phone" and subject.names(order.phone):
                    order.phone = order.phone_key = subject.token
                elif subject.kind == "user" and order.user_id == subject.value:
                    order.user_id = subject.token
                else:
                    continue
                self.book.record(unit, order)
                erased += 1
            return {"flashcall_orders": erased}

        return values, scrub

    def owner_node(self, tenant: str, order_id: str) -> str | None:
        """The node that holds the tenant's order (where a verify must run), or None."""
        if self.book.get(tenant, order_id) is not None:
            return self._node
        row = get_order(self._engine, tenant, order_id)
        return str(row["node"]) if row is not None else None

    def verify(self, command: FlashcallVerifyCommand, to: Delivered) -> dict[str, Any]:
        """``flashcall.verify`` (see ``verify.Verifier``); may raise ``OrderElsewhere``."""
        return self._verifier.verify(command, to)

    # ---------------------------------------------------------------- create

    def create(self, command: FlashcallCreateCommand, to: Delivered) -> dict[str, Any]:
        return refusals_as_replies(self._journal, command, to, lambda: self._create(command, to))

    def _rate_limited(self, command: FlashcallCreateCommand, refusal: Refusal) -> ContractError:
        return contract_error(
            command, ErrorCode.RATE_LIMITED, "too many flash calls: retry later",
            retry_after_s=refusal.retry_after_s, limit=refusal.limit,
        )

    def _create(self, command: FlashcallCreateCommand, to: Delivered) -> dict[str, Any]:
        self._check_create(command)
        now = utcnow()
        self._check_policy(command, now)
        key = phone_key(command.phone)
        history = order_history(self._engine, command.tenant, key, self._limits.window_start(now))
        refusal = self._limits.refusal(history, now)
        if refusal is not None:
            raise self._rate_limited(command, refusal)
        if not self._port.connected:
            raise FreeSwitchUnavailable("FreeSWITCH is not connected")
        previous = latest_order_for_phone(self._engine, command.tenant, key)
        draft = self._draft(command)
        result = self._result(draft.order, resend_after_s=self._limits.resend_after_s(history, now))
        stored = reply_ok(command.command_id, command.type, result)
        usage = self._call_limits.placing(command.tenant, command.user_id, now) if self._call_limits else []
        self._open(command, draft, stored, previous, usage)
        call_id = draft.call.call_id
        try:
            # Job-UUID = call_id: the BACKGROUND_JOB names its call.
            self._port.bgapi(draft.dial, job_uuid=call_id)
        except FreeSwitchError:
            # Never sent twice; the events or the reconciliation settle the call.
            log.warning("flash call %s: FreeSWITCH connection lost while sending", call_id)
        if command.return_code or command.code is not None:
            shown = {**result, "code": {**result["code"], "value": draft.code}}
            wire = reply_ok(command.command_id, command.type, shown)
            return self._reply_with_code(command, to, stored, wire, draft)
        return finish(self._journal, command, to, stored, call_id=call_id)

    def _check_policy(self, command: FlashcallCreateCommand, now: datetime) -> None:
        if self._call_limits is None:
            return
        refusal = self._call_limits.check(command.tenant, command.user_id, now)
        if refusal is not None:
            raise self._policy_refusal(command, refusal)

    @staticmethod
    def _policy_refusal(command: FlashcallCreateCommand, refusal: PolicyRefusal | str | None) -> ContractError:
        if not isinstance(refusal, PolicyRefusal):
            refusal = unjudged(refusal)
        return contract_error(command, refusal.code, refusal.message, **refusal.details())

    def _open(
        self, command: FlashcallCreateCommand, draft: _Draft, stored: dict[str, Any],
        previous: dict[str, Any] | None, usage: list[Delta],
    ) -> None:
        """Open the order and its call as new rows; refused over a cooldown or a limit."""
        order = draft.order
        phone = (order.tenant, order.phone_key)
        # Checked and claimed with no switch to another greenlet in between: two creates
        # for one phone on this node cannot both pass the cooldown.
        older = self.book.open_for_phone(order.tenant, order.phone_key)
        newest = max([o.created_at for o in older] + ([self._opening[phone]] if phone in self._opening else []),
                     default=None)
        refusal = self._limits.refusal(OrderHistory(newest, 0, None, 0, None), order.created_at)
        if refusal is not None:
            raise self._rate_limited(command, refusal)
        self._opening[phone] = order.created_at
        try:
            order.supersedes = _superseded_id(older, previous)
            self._journal.open(self._open_op(command, draft, stored, usage))
        except OverLimit as over:
            raise self._policy_refusal(command, over.refusal) from None
        finally:
            self._opening.pop(phone, None)
        # The phone's older orders on this node close now (in the journal, where they change).
        self._journal.submit(self._supersede_op(order))

    def _check_create(self, command: FlashcallCreateCommand) -> None:
        if command.code is not None and not is_valid_code(command.code, self._code_length):
            raise contract_error(
                command, ErrorCode.VALIDATION_ERROR,
                f"code must be exactly {self._code_length} digits", field="code",
            )
        if not self._destinations.allows(command.phone):
            raise contract_error(
                command, ErrorCode.VALIDATION_ERROR,
                "flash calls to this destination are not allowed",
                field="phone", reason="destination_not_allowed",
            )

    def _draft(self, command: FlashcallCreateCommand) -> _Draft:
        now = utcnow()
        code = command.code if command.code is not None else generate_code(self._code_length)
        order_id, call_id = str(uuid.uuid4()), str(uuid.uuid4())
        prefix = pick_prefix(self._prefixes)
        order = Order(
            order_id=order_id, tenant=command.tenant, node=self._node, phone=command.phone,
            phone_key=phone_key(command.phone), status=OrderStatus.OPEN,
            code_hmac=code_hmac(self._key, order_id, code), code_len=len(code), cid_prefix=prefix,
            max_attempts=self._max_attempts, created_at=now, expires_at=now + self._ttl,
            call_id=call_id, call_status="initiated", user_id=command.user_id, gateway=self._gateway,
        )
        call = CallRecord(
            call_id=call_id, tenant=command.tenant, node=self._node, direction="outbound",
            status=Status.INITIATED, initiated_at=now, destination_number=command.phone,
            caller_id_number=order.cid_mask, flashcall_order_id=order_id, user_id=command.user_id,
            gateway=self._gateway,
        )
        dial = builders.originate(
            call_id=call_id, destination_number=command.phone, gateway=self._gateway,
            timeout_s=self._ring_timeout_s, caller_id_number=prefix + code,
            variables={"callworker_tenant": command.tenant, "callworker_flashcall_order": order_id},
        )
        return _Draft(order, call, dial, code)

    @staticmethod
    def _result(order: Order, *, resend_after_s: int) -> dict[str, Any]:
        return {
            "id": order.order_id,
            "cid": {"prefix": order.cid_prefix, "mask": order.cid_mask},
            "code": {"len": order.code_len},
            "expires_at": to_iso(order.expires_at),
            "resend_after_s": resend_after_s,
        }

    def _open_op(
        self, command: FlashcallCreateCommand, draft: _Draft, stored: dict[str, Any],
        usage: list[Delta],
    ) -> Callable[[Unit], None]:
        order, call = draft.order, draft.call

        def op(unit: Unit) -> None:
            # A new order: its rows and events go in the batch; it joins the book once committed.
            order.last_seq += 1
            unit.emit_for(
                subject_id=order.order_id, tenant=order.tenant, seq=order.last_seq,
                event_type="flashcall.created", occurred_at=order.created_at,
                data=event_data(order, code_len=order.code_len, expires_at=to_iso(order.expires_at),
                                supersedes=order.supersedes),
            )
            unit.batch.orders.append(order.row(unit.now))
            unit.post_commit.append(functools.partial(self.book.orders.__setitem__, order.order_id, order))
            unit.open_call(call)
            if usage:
                unit.count(call, usage)
            # Executing, with its reply already: a redelivery replays it, never dials.
            commit_reply(
                unit, command, Delivered(None, None), stored,
                status="executing", call_id=call.call_id,
            )
            snapshot = call_snapshot(call, now=call.initiated_at)
            unit.emit(call, "call.initiated", call.initiated_at, snapshot)

        return op

    def _supersede_op(self, order: Order) -> Callable[[Unit], None]:
        def op(unit: Unit) -> None:
            older = [
                o for o in self.book.open_for_phone(order.tenant, order.phone_key)
                if o.order_id != order.order_id and (o.created_at, o.order_id) < (order.created_at, order.order_id)
            ]
            for old in sorted(older, key=lambda o: o.created_at):
                close(old, OrderStatus.SUPERSEDED, unit.now)
                self.book.record(unit, old)
                if old.call_id is not None and unit.call(old.call_id) is not None:
                    unit.post_commit.append(functools.partial(self.watch.drop_later, old.call_id, 0))

        return op

    def _reply_with_code(
        self, command: FlashcallCreateCommand, to: Delivered, stored: dict[str, Any],
        wire: dict[str, Any], draft: _Draft,
    ) -> dict[str, Any]:
        """Record the reply without the code; publish the one with it straight to the broker."""
        finish(self._journal, command, Delivered(None, None), stored, call_id=draft.call.call_id)
        if not to.reply_to:
            return wire
        try:
            self._bus.publish_and_wait(
                "", to.reply_to, encode_json(wire), timeout=REPLY_PUBLISH_TIMEOUT_S,
                correlation_id=to.correlation_id,
            )
        except (BrokerUnavailable, PublishFailed):
            log.warning(
                "flash-call order %s: the reply with the code could not be published; "
                "it goes out without the code", draft.order.order_id,
            )
            self._journal.run(lambda unit: unit.reply(to.reply_to, to.correlation_id, stored))
        return wire


def _superseded_id(older: list[Order], previous: dict[str, Any] | None) -> str | None:
    """The order a new one replaces: the newest open on this node, or one open on another."""
    if older:
        return max(older, key=lambda o: o.created_at).order_id
    # Open on another node: that node finds it superseded when it is verified.
    if previous is not None and previous["status"] == str(OrderStatus.OPEN):
        return str(previous["order_id"])
    return None
