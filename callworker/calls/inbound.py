"""Inbound calls handed over by the dialplan's ``socket`` app: the service side.

Strategy: the outbound-socket server gives ``on_session`` the channel data of a
call (CHANNEL_DATA of the ``connect`` reply). It is read and checked here, then
one journal operation opens the call (direction ``inbound``, ``call_id`` = the
channel's Unique-ID) and publishes ``call.initiated`` (and ``call.answered``
when the dialplan answered first). From then on the journal knows the call, so
its FreeSWITCH events (answer, hold, hangup) arrive through the event pump and
``hangup``/``hold``/``mute`` commands act on it by UUID like on any call; it ends
with one terminal event and a CDR (``missed_call`` true if never answered).

Rules for what comes from the network:

* tenant: the channel variable ``callworker_tenant``; ``default`` when unset. A
  value that is not a valid tenant refuses the call (the socket is closed and
  FreeSWITCH goes on with the dialplan): filing it under ``default`` would show
  one tenant's caller to another, and the variable may come from a SIP header.
* numbers (``Caller-Destination-Number``, ``Caller-Caller-ID-Number``): trimmed,
  kept when they are 1-32 of ``0-9 A-Z a-z + * # . _ -`` (digits, ``anonymous``),
  otherwise stored as null; the caller ID name: control characters removed,
  spaces collapsed, at most 64 characters, null when empty.
* a Unique-ID that is not a lowercase UUID, or a channel already hung up,
  refuses the call; so does a worker whose FreeSWITCH event socket is down or
  whose database is known to be down (the carrier may then try another node).

A caller may hang up while the call is being opened; FreeSWITCH's hangup event
is then ignored because the journal did not know the call yet. So when a session
ends, the call is checked again a little later: still live here but gone from
FreeSWITCH (``uuid_exists`` answers ``false``) means it ends with a reconstructed
CDR, as the reconciliation after a reconnect would do. Any other answer, or none,
says nothing: the check is made again later (a few times), never taken as "gone".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import gevent
import gevent.pool
from sqlalchemy.engine import Engine

from callworker.calls.cdr import epoch_us
from callworker.calls.clean import clean_name, clean_number
from callworker.calls.fsevents import end_reconstructed
from callworker.calls.journal import Journal, Unit
from callworker.calls.reconcile import channel_exists
from callworker.calls.record import CallRecord
from callworker.calls.states import TERMINAL, Signal, Status
from callworker.contract import TENANT_RE, UUID_RE, call_snapshot, utcnow
from callworker.errors import FreeSwitchError, StoreUnavailable
from callworker.esl.codec import Event
from callworker.esl.outbound import OutboundSession
from callworker.esl.port import FreeSwitchPort
from callworker.store import call_id_taken

__all__ = ["DEFAULT_TENANT", "InboundCalls", "InboundFacts", "clean_name", "clean_number",
           "read_inbound", "tenant_of"]

log = logging.getLogger("callworker.inbound")

DEFAULT_TENANT = "default"
# How many times a call is checked after its session ended while FreeSWITCH's
# answer stays unknown (then the reconciliation after the next reconnect decides).
SETTLE_CHECKS = 5


@dataclass(frozen=True, slots=True)
class InboundFacts:
    """What the channel data says about an inbound call, checked."""

    call_id: str
    tenant: str
    destination_number: str | None
    caller_id_number: str | None
    caller_id_name: str | None
    answer_state: str  # ringing, early or answered
    created_at: datetime  # the channel was made (the INVITE arrived)
    reached_at: datetime  # the dialplan handed it over
    answered_at: datetime | None


def tenant_of(value: str | None) -> str:
    """The tenant named by ``callworker_tenant``; ValueError when it is not a valid one."""
    if value is None or not value.strip():
        return DEFAULT_TENANT
    tenant = value.strip()
    if TENANT_RE.match(tenant) is None:
        raise ValueError(f"callworker_tenant {value[:70]!r} is not a valid tenant")
    return tenant


def read_inbound(channel: Event) -> InboundFacts:
    """The facts of a handed-over call; ValueError when the call must be refused."""
    call_id = channel.get("Unique-ID") or ""
    if UUID_RE.match(call_id) is None or call_id != call_id.lower():
        raise ValueError(f"no usable Unique-ID ({call_id[:40]!r})")
    state = (channel.get("Answer-State") or "ringing").lower()
    if state == "hangup":
        raise ValueError("the channel has already hung up")
    tenant = tenant_of(channel.get("variable_callworker_tenant"))
    reached = epoch_us(channel.get("Event-Date-Timestamp")) or utcnow()
    created = epoch_us(channel.get("Caller-Channel-Created-Time")) or reached
    answered = epoch_us(channel.get("Caller-Channel-Answered-Time")) if state == "answered" else None
    return InboundFacts(
        call_id=call_id,
        tenant=tenant,
        destination_number=clean_number(channel.get("Caller-Destination-Number")),
        caller_id_number=clean_number(channel.get("Caller-Caller-ID-Number")),
        caller_id_name=clean_name(channel.get("Caller-Caller-ID-Name")),
        answer_state=state if state in ("early", "answered") else "ringing",
        created_at=min(created, reached),
        reached_at=reached,
        answered_at=answered or (reached if state == "answered" else None),
    )


class InboundCalls:
    """Opens the calls the dialplan hands over; settles those that ended meanwhile.

    ``engine`` (optional) lets a reused call_id be refused before it reaches the
    journal; ``port`` (optional) enables the check after a session ends.
    """

    def __init__(
        self, *, journal: Journal, node: str, engine: Engine | None = None,
        port: FreeSwitchPort | None = None, settle_after_s: float = 10.0,
    ) -> None:
        self._journal = journal
        self._node = node
        self._engine = engine
        self._port = port
        self._settle_after = settle_after_s
        self._settling = gevent.pool.Group()
        self.opened = 0
        self.settled = 0

    # ------------------------------------------------------------ the server's callbacks

    def on_session(self, session: OutboundSession) -> bool:
        """Take the call (True) or refuse it (False: FreeSWITCH goes on with the dialplan)."""
        if not self._ready():
            log.warning("refusing inbound call %s: FreeSWITCH's event socket or the database "
                        "is not available", session.uuid)
            return False
        try:
            facts = read_inbound(session.channel)
        except ValueError as exc:
            log.error("refusing the call handed over as %s: %s", session.uuid or "?", exc)
            return False
        if self._reused(facts.call_id):
            log.error("refusing inbound call %s: its call_id is already in use", facts.call_id)
            return False
        record = self._journal.run(self._open_op(facts))
        if record is not None:
            self.opened += 1
        return True

    def on_session_end(self, session: OutboundSession) -> gevent.Greenlet | None:
        """Check the call again once FreeSWITCH has had time to report its end."""
        if self._port is None or not self._journal.knows(session.uuid):
            return None
        return self._settling.spawn(self._settle_later, session.uuid)

    def stop(self) -> None:
        """Drop pending checks (the reconciliation at the next start covers them)."""
        self._settling.kill(block=False)

    # ------------------------------------------------------------------ opening

    def _ready(self) -> bool:
        # Without the event socket the call's events and commands would be lost;
        # with the database down it could not be opened. Refused, the carrier can
        # try another node.
        port_ok = self._port is None or self._port.connected
        return port_ok and self._journal.healthy

    def _reused(self, call_id: str) -> bool:
        if self._engine is None or self._journal.knows(call_id):
            return False
        try:
            return call_id_taken(self._engine, call_id)
        except StoreUnavailable:
            return False  # the journal will wait for the database anyway

    def _open_op(self, facts: InboundFacts) -> Callable[[Unit], CallRecord | None]:
        def op(unit: Unit) -> CallRecord | None:
            if unit.call(facts.call_id) is not None:
                return None  # already ours (a call of ours sent to the socket, a second hand-over)
            record = CallRecord(
                call_id=facts.call_id, tenant=facts.tenant, node=self._node, direction="inbound",
                status=Status.INITIATED, initiated_at=facts.created_at,
                destination_number=facts.destination_number,
                caller_id_number=facts.caller_id_number, caller_id_name=facts.caller_id_name,
            )
            record.channel_seen = True
            unit.open_call(record)
            at = facts.reached_at
            unit.emit(record, "call.initiated", at, call_snapshot(record, now=at))
            if facts.answer_state == "answered":
                unit.signal(record, Signal.ANSWERED, facts.answered_at or at)
            elif facts.answer_state == "early":
                unit.signal(record, Signal.RINGING, at)
            return record

        return op

    # ----------------------------------------------------------------- settling

    def _settle_later(self, call_id: str) -> None:
        for _ in range(SETTLE_CHECKS):
            gevent.sleep(self._settle_after)  # a timer: FreeSWITCH's own hangup event goes first
            record = self._journal.calls.get(call_id)
            port = self._port
            if record is None or record.status in TERMINAL or port is None or not port.connected:
                return  # ended as usual, or the reconciliation after reconnect will see to it
            try:
                exists = channel_exists(port, call_id)
            except FreeSwitchError as exc:
                log.warning("inbound call %s: no answer whether FreeSWITCH still has it (%s); "
                            "asking again", call_id, exc)
                continue
            if exists:
                return
            if self._journal.run(_settle_op(call_id)):
                self.settled += 1
                log.warning("inbound call %s ended while it was being taken over; settled", call_id)
            return


def _settle_op(call_id: str) -> Callable[[Unit], bool]:
    def op(unit: Unit) -> bool:
        record = unit.call(call_id)
        if record is None or record.status in TERMINAL:
            return False
        end_reconstructed(unit, record)
        return True

    return op
