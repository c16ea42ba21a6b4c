"""The call service: what each call command does to FreeSWITCH and to the journal.

Every handler returns the reply it committed. The reply is written in the same
journal batch as the command record (the idempotency key) and whatever the
command changed, so a redelivered command finds its first reply and nothing is
executed twice. Refusals caused by the state of things (CALL_NOT_FOUND,
CALL_NOT_ACTIVE, ...) are replies like any other; validation failures raise
ContractError for the intake to dead-letter.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from callworker.calls.connect import Connector
from callworker.calls.journal import Journal, Unit
from callworker.calls.record import CallRecord
from callworker.calls.replies import Delivered, finish, record_new
from callworker.calls.states import ANSWERED_STATUSES, TERMINAL, Signal, Status
from callworker.contract import (
    CallGetCommand,
    CallListCommand,
    CdrListCommand,
    Command,
    ContractError,
    ErrorCode,
    HangupCommand,
    HoldCommand,
    MuteCommand,
    OriginateCommand,
    TransferCommand,
    call_snapshot,
    cdr_data,
    reply_error,
    reply_ok,
    utcnow,
)
from callworker.errors import (
    AlreadyStored,
    FreeSwitchError,
    FreeSwitchNotSent,
    FreeSwitchUnavailable,
    OverLimit,
)
from callworker.esl import builders
from callworker.esl.port import FreeSwitchPort
from callworker.policy.limits import CallLimits, Refusal, unjudged
from callworker.store import get_call, list_calls, list_cdrs
from callworker.store.usage import Delta

__all__ = ["CallService", "Delivered", "finish"]  # Delivered and finish: calls/replies.py

log = logging.getLogger("callworker.calls")


class CallService:
    def __init__(
        self,
        *,
        journal: Journal,
        port: FreeSwitchPort,
        engine: Engine,
        node: str,
        gateways: tuple[str, ...],
        default_gateway: str,
        dial_retry_s: float = 10.0,
        limits: CallLimits | None = None,
        connector: Connector | None = None,
    ) -> None:
        self._journal = journal
        # What answered calls are connected to (calls/connect.py); without it, park.
        self._connector = connector
        # Without limits (tests of other parts), calls are neither checked nor counted.
        self._limits = limits
        self._port = port
        self._engine = engine
        self._node = node
        self._gateways = frozenset(gateways)
        self._default_gateway = default_gateway
        self._dial_retry_s = dial_retry_s
        # Calls whose originate is not yet handed to FreeSWITCH (reconciliation skips them).
        self.dialling: set[str] = set()
        self._handlers: dict[str, Callable[[Any, Delivered], dict[str, Any]]] = {
            "originate": self.originate,
            "hangup": self.hangup,
            "hold": self.hold,
            "mute": self.mute,
            "transfer": self.transfer,
            "call.get": self.call_get,
            "call.list": self.call_list,
            "cdr.list": self.cdr_list,
        }

    def handles(self, command_type: str) -> bool:
        return command_type in self._handlers

    def needs_freeswitch(self, command_type: str) -> bool:
        return command_type in ("originate", "hangup", "hold", "mute", "transfer", "flashcall.create")

    def owner_of(self, command: Command) -> str | None:
        """The other node that holds this command's live call, if any (it must act on it)."""
        if command.type not in ("hangup", "hold", "mute", "transfer"):
            return None
        return self.node_holding(command)

    def node_holding(self, command: Command) -> str | None:
        """The other node holding the live call the command names, if another holds it."""
        call_id = getattr(command, "call_id", None)
        if call_id is None or self._journal.knows(call_id):
            return None
        row = get_call(self._engine, command.tenant, call_id)
        if row is None or Status(row["status"]) in TERMINAL or row["node"] == self._node:
            return None
        return str(row["node"])

    def call_id_to_check(self, command: Command) -> str | None:
        """The client-chosen call id an originate asks for, to look up with the command."""
        return command.call_id if isinstance(command, OriginateCommand) else None

    def checks_on_commit(self, command: Command) -> bool:
        """Whether the command's own commit refuses a command id (or call id) seen before.

        An originate's is written fresh (`Journal.open`): no lookup is needed before
        it, and AlreadyStored says to look up why.
        """
        return isinstance(command, OriginateCommand)

    def execute(self, command: Command, to: Delivered) -> dict[str, Any]:
        """Run the command; AlreadyStored from an originate: its command or call id is taken."""
        try:
            return self._handlers[command.type](command, to)
        except ContractError as error:
            if error.dead_letter:
                raise
            return self.finish(command, to, reply_error(error), call_id=getattr(command, "call_id", None))

    def call_id_in_use(self, command: Command) -> ContractError:
        return self._error(command, ErrorCode.VALIDATION_ERROR, "call_id is already in use", field="call_id")

    # ------------------------------------------------------------ helpers

    def finish(
        self,
        command: Command,
        to: Delivered,
        reply: dict[str, Any],
        *,
        call_id: str | None = None,
        then: Callable[[Unit], None] | None = None,
    ) -> dict[str, Any]:
        """Commit the command record, its reply, and ``then``'s changes in one batch."""
        return finish(self._journal, command, to, reply, call_id=call_id, then=then)

    def _error(self, command: Command, code: ErrorCode, message: str, **details: Any) -> ContractError:
        return ContractError(code, message, details=details, command_id=command.command_id, command_type=command.type)

    def _live_call(self, command: Command, call_id: str) -> CallRecord:
        """The caller's live call on this node, or the reason it cannot be acted on."""
        record = self._journal.calls.get(call_id)
        if record is not None and record.tenant == command.tenant:
            return record
        row = get_call(self._engine, command.tenant, call_id)
        if row is None:
            raise self._error(command, ErrorCode.CALL_NOT_FOUND, "no such call", call_id=call_id)
        if Status(row["status"]) in TERMINAL:
            raise self._error(
                command, ErrorCode.CALL_NOT_ACTIVE, "the call has ended", call_id=call_id, status=row["status"]
            )
        # Live in the database but not held here: another node's call (or one
        # whose node is gone); this node cannot act on it.
        raise self._error(command, ErrorCode.CALL_NOT_ACTIVE, "the call is not held by this node", call_id=call_id)

    def _answered_call(self, command: Command, call_id: str, what: str) -> CallRecord:
        record = self._live_call(command, call_id)
        if record.status not in ANSWERED_STATUSES:
            raise self._error(
                command,
                ErrorCode.CALL_NOT_ACTIVE,
                f"only an answered call can be {what}",
                call_id=record.call_id,
                status=str(record.status),
            )
        return record

    def answered_call(self, command: Command, call_id: str, what: str) -> CallRecord:
        """The caller's answered call on this node, or the ContractError that refuses the command."""
        return self._answered_call(command, call_id, what)

    def api(self, command: Command, text: str) -> str:
        """FreeSWITCH's reply to ``text``; a ContractError (FREESWITCH_ERROR) if it refused it."""
        return self._api(command, text)

    def _api(self, command: Command, text: str) -> str:
        reply = self._port.api(text).strip()
        if reply.startswith("-ERR") or reply.startswith("-USAGE"):
            raise self._error(command, ErrorCode.FREESWITCH_ERROR, "FreeSWITCH refused the command", reply=reply)
        return reply

    def _ask(self, command: Command, record: CallRecord, field: str, state: bool, text: str) -> None:
        """Send a hold or mute change, noting the state asked before the send lets another command in."""
        before = getattr(record, field)
        setattr(record, field, state)
        try:
            self._api(command, text)
        except BaseException:
            if getattr(record, field) is state:  # no later command asked anything since
                setattr(record, field, before)
            raise

    # ------------------------------------------------------------ commands

    def originate(self, command: OriginateCommand, to: Delivered) -> dict[str, Any]:
        call_id = command.call_id or str(uuid.uuid4())
        gateway = command.gateway or self._default_gateway
        if gateway not in self._gateways:
            raise self._error(command, ErrorCode.VALIDATION_ERROR, "unknown gateway", field="gateway")
        if self._journal.knows(call_id):
            # This command again, or another asking for the same call id: the intake
            # reads which, as for a refused commit.
            raise AlreadyStored("the call id is held already")
        plan = self._connector.plan(command, call_id) if self._connector else None
        dial = builders.originate(
            call_id=call_id,
            destination_number=command.destination_number,
            gateway=gateway,
            timeout_s=command.timeout_s,
            caller_id_number=command.caller_id_number,
            caller_id_name=command.caller_id_name,
            privacy=command.privacy,
            variables={"callworker_tenant": command.tenant},
            **(plan.dial if plan else {}),
        )
        now = utcnow()
        refusal = self._limits.check(command.tenant, command.user_id, now) if self._limits else None
        if refusal is not None:
            return self.refuse_placing(command, to, refusal)
        if not self._port.connected:
            raise FreeSwitchUnavailable("FreeSWITCH is not connected")
        result = {"call_id": call_id, "status": "initiated", **(plan.reply if plan else {})}
        reply = reply_ok(command.command_id, command.type, result)
        usage = self._limits.placing(command.tenant, command.user_id, now) if self._limits else []
        self.dialling.add(call_id)
        try:
            # The reply is committed with the call and published at once: "initiated"
            # means accepted and recorded, whatever the dial does next, and a redelivered
            # command finds it and dials nothing, so it need not wait for FreeSWITCH.
            # Refused (AlreadyStored) if the command or the call id is stored already,
            # (OverLimit) if the call would take a count over a limit: nothing is dialled.
            try:
                self._journal.open(self._open_call_op(
                    command, to, call_id, reply, now, usage, plan.connect if plan else None
                ))
            except OverLimit as over:
                return self.refuse_placing(command, to, over.refusal)
            self._dial(call_id, dial)
        finally:
            self.dialling.discard(call_id)
        return reply

    def refuse_placing(self, command: Command, to: Delivered, refusal: Refusal | str | None) -> dict[str, Any]:
        """Answer a call refused by a limit or a permission, and record that answer as new.

        If the command was executed elsewhere meanwhile, its first reply stays and
        this raises AlreadyStored (the intake then answers with that one).
        """
        if not isinstance(refusal, Refusal):
            refusal = unjudged(refusal)
        error = self._error(command, refusal.code, refusal.message, **refusal.details())
        reply = record_new(self._journal, command, to, reply_error(error))
        log.debug("command %s refused: %s %s of the %s", command.command_id, refusal.code.value, refusal.limit,
                  refusal.scope)
        return reply

    def _dial(self, call_id: str, dial: str) -> None:
        """Send the originate once; again only if nothing of it reached FreeSWITCH."""
        deadline = time.monotonic() + self._dial_retry_s
        while True:
            try:
                # Job-UUID = call_id: the BACKGROUND_JOB names its call.
                self._port.bgapi(dial, job_uuid=call_id)
                return
            except FreeSwitchNotSent:
                remaining = deadline - time.monotonic()
                if remaining > 0 and self._port.wait_connected(remaining):
                    continue
                log.warning("originate %s: FreeSWITCH did not come back; not sent", call_id)
                return
            except FreeSwitchError:
                # The command may or may not have reached FreeSWITCH: never send it
                # again. The call stays initiated until FreeSWITCH's events or the
                # reconciliation after reconnect settle it.
                log.warning("originate %s: FreeSWITCH connection lost while sending", call_id)
                return

    def _open_call_op(
        self, command: OriginateCommand, to: Delivered, call_id: str, reply: dict[str, Any],
        now: datetime, usage: list[Delta], connect: dict[str, Any] | None = None,
    ) -> Callable[[Unit], None]:
        record = CallRecord(
            call_id=call_id,
            tenant=command.tenant,
            node=self._node,
            direction="outbound",
            status=Status.INITIATED,
            initiated_at=now,
            destination_number=command.destination_number,
            caller_id_number=command.caller_id_number,
            caller_id_name=command.caller_id_name,
            user_id=command.user_id,
            connect=connect,
            gateway=command.gateway or self._default_gateway,
        )

        def op(unit: Unit) -> None:
            if unit.call(call_id) is not None:
                raise AlreadyStored("the call id is held already")
            unit.open_call(record)
            if usage:
                unit.count(record, usage)
            unit.save_command(
                tenant=command.tenant,
                command_id=command.command_id,
                command_type=command.type,
                status="done",
                reply=reply,
                call_id=call_id,
                user_id=command.user_id,
            )
            unit.emit(record, "call.initiated", now, call_snapshot(record, now=now))
            unit.reply(to.reply_to, to.correlation_id, reply)

        return op

    def hangup(self, command: HangupCommand, to: Delivered) -> dict[str, Any]:
        record = self._live_call(command, command.call_id)

        def mark(unit: Unit) -> None:
            record.hangup_requested = True
            unit.save(record)

        # Recorded before the kill, so the ending is classified as ours (cancelled).
        self._journal.run(mark)
        self._api(command, builders.uuid_kill(record.call_id, command.cause))
        return self._status_reply(command, to, record, {"call_id": record.call_id})

    def hold(self, command: HoldCommand, to: Delivered) -> dict[str, Any]:
        record = self._answered_call(command, command.call_id, "held")
        asked = record.on_hold if record.hold_asked is None else record.hold_asked
        if asked != command.hold:
            self._ask(command, record, "hold_asked", command.hold, builders.uuid_hold(record.call_id, command.hold))
        result = {"call_id": record.call_id, "on_hold": command.hold}
        return self.finish(command, to, reply_ok(command.command_id, command.type, result), call_id=record.call_id)

    def mute(self, command: MuteCommand, to: Delivered) -> dict[str, Any]:
        # Answered only: on an unanswered channel FreeSWITCH's uuid_audio pre-answers it
        # (a false 183 to the far end).
        record = self._answered_call(command, command.call_id, "muted")
        asked = record.muted if record.mute_asked is None else record.mute_asked
        changed = asked != command.muted
        if changed:
            text = builders.uuid_audio_mute(record.call_id, command.muted)
            self._ask(command, record, "mute_asked", command.muted, text)
        result = {"call_id": record.call_id, "muted": command.muted}

        def publish(unit: Unit) -> None:
            # FreeSWITCH reports no mute event: the worker publishes it itself.
            if changed and unit.call(record.call_id) is record:
                signal = Signal.MUTED if command.muted else Signal.UNMUTED
                unit.signal(record, signal, unit.now)

        reply = reply_ok(command.command_id, command.type, result)
        return self.finish(command, to, reply, call_id=record.call_id, then=publish)

    def transfer(self, command: TransferCommand, to: Delivered) -> dict[str, Any]:
        if self._connector is None:
            raise self._error(command, ErrorCode.UNKNOWN_COMMAND, "transfer is not available")
        connect = self._connector.transfer_plan(command)
        record = self._answered_call(command, command.call_id, "transferred")
        if connect["to"] == "extension":
            self._api(command, builders.uuid_transfer(record.call_id, connect["extension"], connect["context"]))
        result = {"call_id": record.call_id}
        if connect["to"] == "number":
            result["connect_call_id"] = connect["partner"]
        return self._status_reply(command, to, record, result, then=self._connector.transfer_op(record, connect))

    def _status_reply(
        self, command: Command, to: Delivered, record: CallRecord, result: dict[str, Any],
        then: Callable[[Unit], None] | None = None,
    ) -> dict[str, Any]:
        """A reply whose ``status`` is the call's status when the reply is committed."""

        def op(unit: Unit) -> dict[str, Any]:
            if then is not None:
                then(unit)
            reply = reply_ok(command.command_id, command.type, {**result, "status": str(record.status)})
            unit.save_command(
                tenant=command.tenant,
                command_id=command.command_id,
                command_type=command.type,
                status="done",
                reply=reply,
                call_id=record.call_id,
                user_id=command.user_id,
            )
            unit.reply(to.reply_to, to.correlation_id, reply)
            return reply

        return self._journal.run(op)

    # --------------------------------------------------------------- reads

    def call_get(self, command: CallGetCommand, to: Delivered) -> dict[str, Any]:
        record = self._journal.calls.get(command.call_id)
        if record is not None and record.tenant == command.tenant:
            snapshot = call_snapshot(record)
        else:
            row = get_call(self._engine, command.tenant, command.call_id)
            if row is None:
                raise self._error(command, ErrorCode.CALL_NOT_FOUND, "no such call", call_id=command.call_id)
            snapshot = call_snapshot(row)
        return self.finish(command, to, reply_ok(command.command_id, command.type, snapshot), call_id=command.call_id)

    def call_list(self, command: CallListCommand, to: Delivered) -> dict[str, Any]:
        rows, total = list_calls(
            self._engine,
            command.tenant,
            from_=command.from_,
            to=command.to,
            status=str(command.status) if command.status else None,
            limit=command.limit,
            offset=command.offset,
            user_id=command.user_id,
        )
        result = {
            "calls": [call_snapshot(row) for row in rows],
            "total_count": total,
            "has_more": command.offset + len(rows) < total,
        }
        return self.finish(command, to, reply_ok(command.command_id, command.type, result))

    def cdr_list(self, command: CdrListCommand, to: Delivered) -> dict[str, Any]:
        rows, total = list_cdrs(
            self._engine,
            command.tenant,
            from_=command.from_,
            to=command.to,
            limit=command.limit,
            offset=command.offset,
            user_id=command.user_id,
        )
        result = {
            "cdrs": [cdr_data(row) for row in rows],
            "total_count": total,
            "has_more": command.offset + len(rows) < total,
        }
        return self.finish(command, to, reply_ok(command.command_id, command.type, result))
