"""What an answered call is connected to: park, a dialplan extension, or a second call.

Click-to-call (``connect.to = number``) is two calls of the worker's own, each with its
own call_id, events and CDR. The first is placed and parked; once it is answered the
second is placed (``&park()`` too, its channel UUID the second call_id, fixed when the
command was accepted, so a repeated command or a restart never places it twice) and,
once that one is answered and parked (CHANNEL_PARK), the two are joined with ``uuid_bridge``. FreeSWITCH then reports
CHANNEL_BRIDGE and CHANNEL_UNBRIDGE on the first leg, naming both; each leg gets
``call.bridged`` / ``call.unbridged``. FreeSWITCH ends the other leg when one of a bridge
hangs up; before the bridge (the second number busy, the first hung up while the second
rings) the worker ends the other leg itself.

The state of the connection lives on the call (``CallRecord.connect``, persisted):
``{"to": "number", "partner": <second call_id>, "placed": bool, "bridged": bool, ...}``
on the first call, ``{"to": "bridge", "partner": <first call_id>}`` on the second.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import gevent
from sqlalchemy import select
from sqlalchemy.engine import Engine

from callworker.calls.cdr import epoch_us, synthetic_cdr_fields
from callworker.calls.journal import Journal, Unit
from callworker.calls.record import CallRecord
from callworker.calls.states import ANSWERED_STATUSES, TERMINAL, Status
from callworker.contract import (
    HANGUP_CAUSES,
    Command,
    ContractError,
    ErrorCode,
    ExtensionConnect,
    NumberConnect,
    OriginateCommand,
    TransferCommand,
    call_snapshot,
    utcnow,
)
from callworker.errors import FreeSwitchError, FreeSwitchNotSent
from callworker.esl import builders
from callworker.esl.codec import Event
from callworker.esl.port import FreeSwitchPort
from callworker.store.models import Call

__all__ = ["CONNECT_EVENTS", "CONNECT_FILTERS", "CONNECT_SUBSCRIBED", "ConnectPlan", "Connector", "connect_call_id"]

log = logging.getLogger("callworker.connect")

# FreeSWITCH events the connections need besides the call events (calls/fsevents.py),
# and how they are subscribed: the first two by name, CHANNEL_PARK by CONNECT_FILTERS.
CONNECT_EVENTS: tuple[str, ...] = ("CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE", "CHANNEL_PARK")
CONNECT_SUBSCRIBED: tuple[str, ...] = ("CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE")
# Every call the worker places parks, and CHANNEL_PARK carries every variable of the
# channel: subscribing it by name would cost FreeSWITCH and the worker a large event per
# call. Only a second call needs it, so it is taken by this channel variable, which only
# second calls carry (the event filter passes their events, CHANNEL_PARK among them).
PARTNER_VARIABLE = "callworker_connect_partner"
CONNECT_FILTERS: tuple[tuple[str, str], ...] = ((f"variable_{PARTNER_VARIABLE}", "/^[0-9a-f]/"),)
# How long after its answer a second call has surely parked (see Connector.rearm).
_SETTLED = timedelta(seconds=2)
_CONNECT_NAMESPACE = uuid.UUID("5b0d7f53-1f7e-4c55-9c7b-6f1c2f0a8e11")


def connect_call_id(command: Command, chosen: str | None) -> str:
    """The second call's id: the client's, or derived from the command (the same on redelivery)."""
    if chosen is not None:
        return chosen
    return str(uuid.uuid5(_CONNECT_NAMESPACE, f"{command.tenant}:{command.command_id}"))


@dataclass(frozen=True)
class ConnectPlan:
    """What an originate's ``connect`` adds: builder arguments, the call's state, reply fields."""

    dial: dict[str, Any]
    connect: dict[str, Any] | None = None
    reply: dict[str, Any] = field(default_factory=dict)


class Connector:
    """Connect answered calls; the ``transfer`` command; the bridge events."""

    def __init__(
        self, *, journal: Journal, port: FreeSwitchPort, engine: Engine, node: str,
        gateways: tuple[str, ...], default_gateway: str, contexts: tuple[str, ...], max_duration_s: int,
    ) -> None:
        self._journal = journal
        self._port = port
        self._engine = engine
        self._node = node
        self._gateways = frozenset(gateways)
        self._default_gateway = default_gateway
        self._contexts = contexts
        self._max_duration_s = max_duration_s

    # ------------------------------------------------------------ validation

    def _error(self, command: Command, message: str, field_name: str) -> ContractError:
        return ContractError(
            ErrorCode.VALIDATION_ERROR, message, details={"field": field_name},
            command_id=command.command_id, command_type=command.type,
        )

    def _context(self, command: Command, target: ExtensionConnect) -> str:
        context = target.context or self._contexts[0]
        if context not in self._contexts:
            raise self._error(command, "connect.context is not a configured context", "connect.context")
        return context

    def _second_call(self, command: Command, target: NumberConnect, first_id: str) -> dict[str, Any]:
        gateway = target.gateway or self._default_gateway
        if gateway not in self._gateways:
            raise self._error(command, "unknown gateway", "connect.gateway")
        partner = connect_call_id(command, target.call_id)
        if partner == first_id or (target.call_id is not None and self._in_use(partner)):
            raise self._error(command, "connect.call_id is already in use", "connect.call_id")
        return {
            "to": "number", "partner": partner, "placed": False, "bridged": False,
            "destination_number": target.destination_number, "caller_id_number": target.caller_id_number,
            "caller_id_name": target.caller_id_name, "gateway": gateway, "timeout_s": target.timeout_s,
        }

    def _in_use(self, call_id: str) -> bool:
        if self._journal.knows(call_id):
            return True
        with self._engine.connect() as conn:
            return conn.execute(select(Call.call_id).where(Call.call_id == call_id)).first() is not None

    def plan(self, command: OriginateCommand, call_id: str) -> ConnectPlan:
        """Check an originate's ``connect`` (ContractError, dead-lettered) and say what it adds."""
        max_duration_s = command.max_duration_s or self._max_duration_s
        dial: dict[str, Any] = {"max_duration_s": max_duration_s}
        target = command.connect
        if isinstance(target, ExtensionConnect):
            context = self._context(command, target)
            dial["extension"] = (target.extension, context)
            return ConnectPlan(dial, {"to": "extension", "extension": target.extension, "context": context})
        if isinstance(target, NumberConnect):
            connect = self._second_call(command, target, call_id)
            connect["max_duration_s"] = max_duration_s
            return ConnectPlan(dial, connect, {"connect_call_id": connect["partner"]})
        return ConnectPlan(dial)

    # ------------------------------------------------------------ the second call

    def _open_second(self, unit: Unit, first: CallRecord) -> CallRecord | None:
        """Open the second call of a click-to-call (once) and dial it after the commit."""
        connect = first.connect or {}
        partner = connect["partner"]
        if connect.get("placed") or unit.call(partner) is not None:
            return None
        connect["placed"] = True
        _forget_numbers(first)
        unit.save(first)
        second = CallRecord(
            call_id=partner, tenant=first.tenant, node=first.node, direction="outbound",
            status=Status.INITIATED, initiated_at=unit.now,
            destination_number=connect["destination_number"], caller_id_number=connect.get("caller_id_number"),
            caller_id_name=connect.get("caller_id_name"), user_id=first.user_id,
            connect={"to": "bridge", "partner": first.call_id},
        )
        unit.open_call(second)
        unit.emit(second, "call.initiated", unit.now, call_snapshot(second, now=unit.now))
        dial = builders.originate(
            call_id=partner, destination_number=connect["destination_number"], gateway=connect["gateway"],
            timeout_s=connect["timeout_s"], caller_id_number=connect.get("caller_id_number"),
            caller_id_name=connect.get("caller_id_name"),
            variables={"callworker_tenant": first.tenant, PARTNER_VARIABLE: first.call_id},
            max_duration_s=connect.get("max_duration_s") or self._max_duration_s,
        )
        unit.post_commit.append(lambda: gevent.spawn(self._dial, partner, dial))
        return second

    def _dial(self, call_id: str, dial: str) -> None:
        try:
            self._port.bgapi(dial, job_uuid=call_id)
        except FreeSwitchNotSent:
            log.warning("second call %s: FreeSWITCH not connected; not placed", call_id)
            self._journal.submit(_fail_unplaced(call_id))
        except FreeSwitchError:
            # It may have reached FreeSWITCH: its events or the reconciliation settle it.
            log.warning("second call %s: FreeSWITCH connection lost while sending", call_id)

    def _api_later(self, text: str) -> None:
        def run() -> None:
            try:
                reply = self._port.api(text).strip()
            except FreeSwitchError:
                log.warning("%s: FreeSWITCH connection lost", text.split()[0])
                return
            if reply.startswith("-ERR No such channel"):
                log.debug("%s: the channel had ended already", text.split()[0])
            elif not reply.startswith("+OK"):
                log.warning("%s: %s", text.split()[0], reply)

        gevent.spawn(run)

    # ------------------------------------------------------------ journal observer

    def on_call_event(self, unit: Unit, record: CallRecord, event_type: str) -> None:
        """Place the second call on answer; bridge it on its answer; end the other leg on an end."""
        connect = record.connect
        if not connect:
            return
        if event_type == "call.answered":
            if connect.get("to") == "number":
                self._open_second(unit, record)
        elif record.status in TERMINAL and connect.get("to") in ("number", "bridge"):
            _forget_numbers(record)
            partner = unit.call(connect.get("partner") or "")
            # Ended before the bridge (busy, no answer, hung up while the other rang): the
            # other leg ends too, with this one's cause where it is a cause name. Once
            # bridged, FreeSWITCH ends the other leg itself; and a partner a transfer has
            # moved on (to another call, to the dialplan) is left alone.
            if (partner is not None and partner.status not in TERMINAL and not connect.get("bridged")
                    and _connected(partner, record)):
                cause = record.hangup_cause if record.hangup_cause in HANGUP_CAUSES else "NORMAL_CLEARING"
                self._end_later(unit, partner, cause)

    def _end_later(self, unit: Unit, record: CallRecord, cause: str) -> None:
        if record.status not in ANSWERED_STATUSES:
            # Dropped by the worker before answer: cancelled, as by a hangup command.
            record.hangup_requested = True
            unit.save(record)
        text = builders.uuid_kill(record.call_id, cause)
        unit.post_commit.append(lambda: self._api_later(text))

    # ------------------------------------------------------------ bridge events

    def on_switch_event(self, event: Event) -> None:
        """CHANNEL_PARK of a second call: bridge it. CHANNEL_BRIDGE / CHANNEL_UNBRIDGE:
        ``call.bridged`` / ``call.unbridged`` on each leg we hold."""
        if event.name == "CHANNEL_PARK":
            # Every call the worker places parks: only a second call's park is submitted
            # (its row is opened before it is dialled, so it is here by now).
            record = self._journal.calls.get(event.get("Unique-ID") or "")
            if record is not None and (record.connect or {}).get("to") == "bridge":
                self._journal.submit(self._parked_op(record.call_id))
            return
        a, b = event.get("Bridge-A-Unique-ID"), event.get("Bridge-B-Unique-ID")
        if a is None or b is None or not (self._journal.knows(a) or self._journal.knows(b)):
            return
        bridged = event.name == "CHANNEL_BRIDGE"
        occurred_at = epoch_us(event.get("Event-Date-Timestamp")) or utcnow()
        self._journal.submit(_bridge_op(a, b, bridged, occurred_at))

    def rearm(self) -> None:
        """After a reconciliation: bridge the second calls whose park the worker never read.

        A second call answered and parked while the worker was away (or its events lost)
        waits parked. One answered more than ``_SETTLED`` ago has parked by now (a younger
        one's CHANNEL_PARK may still be on its way: bridging before it would be lost).
        """

        def op(unit: Unit) -> None:
            settled = unit.now - _SETTLED
            for record in list(unit.journal.calls.values()):
                connect = record.connect or {}
                if (connect.get("to") == "bridge" and not connect.get("bridging")
                        and record.answered_at is not None and record.answered_at < settled):
                    self._parked_op(record.call_id)(unit)

        self._journal.submit(op)

    def _parked_op(self, call_id: str) -> Any:
        """The second call is answered and parked: bridge it to the first, or end it.

        Not on its CHANNEL_ANSWER: FreeSWITCH answers ``uuid_bridge`` +OK for a leg whose
        originate has not yet started its application, and then parks it unbridged.
        """

        def op(unit: Unit) -> None:
            record = unit.call(call_id)
            connect = record.connect if record is not None else None
            if record is None or not connect or connect.get("to") != "bridge" or connect.get("bridging"):
                return
            if record.status not in ANSWERED_STATUSES:
                return
            first = unit.call(connect["partner"])
            if first is None or first.status not in ANSWERED_STATUSES or not _connected(first, record):
                # The first call ended, or a transfer connected it elsewhere meanwhile.
                self._end_later(unit, record, "NORMAL_CLEARING")
                return
            connect["bridging"] = True
            unit.save(record)
            text = builders.uuid_bridge(first.call_id, record.call_id)
            unit.post_commit.append(lambda: self._api_later(text))

        return op

    # ------------------------------------------------------------ transfer

    def transfer_plan(self, command: TransferCommand) -> dict[str, Any]:
        """Check a transfer's ``connect`` before anything is done (ContractError, dead-lettered)."""
        target = command.connect
        if isinstance(target, ExtensionConnect):
            return {"to": "extension", "extension": target.extension, "context": self._context(command, target)}
        connect = self._second_call(command, target, command.call_id)
        connect["max_duration_s"] = self._max_duration_s
        return connect

    def transfer_op(self, record: CallRecord, connect: dict[str, Any]) -> Any:
        """In the command's batch: publish call.transferred; for a number, place the second call."""

        def op(unit: Unit) -> None:
            if unit.call(record.call_id) is not record or record.status in TERMINAL:
                return
            data = call_snapshot(record.row(unit.now), now=unit.now)
            data["connect"] = {k: connect[k] for k in ("to", "extension", "context", "destination_number")
                               if connect.get(k) is not None}
            if connect["to"] == "number":
                record.connect = dict(connect)
                data["connect_call_id"] = connect["partner"]
                self._open_second(unit, record)
            else:
                record.connect = dict(connect)
                unit.save(record)
            unit.emit(record, "call.transferred", unit.now, data)

        return op


# What a call keeps of its connection once the second call is placed (or it ended): the
# second call's numbers live on in that call's own row, which privacy.erase reaches.
_KEPT = frozenset({"to", "partner", "placed", "bridging", "bridged", "extension", "context", "max_duration_s"})


def _connected(record: CallRecord, other: CallRecord) -> bool:
    """Whether ``record``'s connection still names ``other``."""
    return (record.connect or {}).get("partner") == other.call_id


def _forget_numbers(record: CallRecord) -> None:
    if record.connect is not None:
        record.connect = {k: v for k, v in record.connect.items() if k in _KEPT}


def _bridge_op(a: str, b: str, bridged: bool, occurred_at: datetime) -> Any:
    def op(unit: Unit) -> None:
        for this, other in ((a, b), (b, a)):
            record = unit.call(this)
            if record is None or record.status in TERMINAL:
                continue
            if bridged:
                record.bridged_with = other
                if record.connect is not None and record.connect.get("partner") == other:
                    record.connect["bridged"] = True
            elif record.bridged_with is not None and record.bridged_with != other:
                continue  # an older bridge's end: this leg is bridged to another call now
            else:
                record.bridged_with = None
            data = call_snapshot(record.row(unit.now), now=occurred_at)
            data["bridged_with"] = other
            unit.emit(record, "call.bridged" if bridged else "call.unbridged", occurred_at, data)

    return op


def _fail_unplaced(call_id: str) -> Any:
    """The second call's originate never reached FreeSWITCH: it fails (and so ends the first)."""

    def op(unit: Unit) -> None:
        from callworker.calls.fsevents import end_call

        record = unit.call(call_id)
        if record is None or record.channel_seen or record.status in TERMINAL:
            return
        cause = "NORMAL_TEMPORARY_FAILURE"
        end_call(unit, record, cause=cause, occurred_at=unit.now,
                 cdr=synthetic_cdr_fields(record, cause, unit.now))

    return op
