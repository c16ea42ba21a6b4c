"""Reconciliation: after a (re)connect, bring the live calls in line with what FreeSWITCH has.

Events that FreeSWITCH sent while the worker was away (ESL connection down,
process restarting) are gone; ``show channels as json`` tells what is left.

- A call the worker holds as live that FreeSWITCH no longer has ended meanwhile:
  it gets its terminal event and a CDR marked as reconstructed, so every call
  still ends exactly once.
- A call FreeSWITCH still has may have progressed meanwhile: its ``callstate``
  says whether it rang (RINGING, EARLY) or was answered (ACTIVE, HELD, UNHELD).
  The missed ``call.ringing``/``call.answered`` are emitted then, so the call ends
  as it really did (``completed``, not ``failed``). Their time is the time the
  worker learnt of them: the channel list carries no answer time. Hold is not
  brought up to date: it goes both ways, and a CHANNEL_HOLD still in flight
  could be overtaken by a stale list.
- A channel on this node's FreeSWITCH whose call is live in the database under
  another node id (the worker was renamed, or replaced by another with a new id)
  is adopted: it is this node's call now, its events continue from its last seq.
  Channels with no call row (not placed or taken over by callworker) are left alone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Container
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from callworker.calls.fsevents import end_reconstructed
from callworker.calls.journal import Journal, Unit
from callworker.calls.record import CallRecord
from callworker.calls.states import TERMINAL, Signal
from callworker.contract import utcnow
from callworker.esl import builders
from callworker.esl.port import FreeSwitchPort
from callworker.store import live_calls_by_id

__all__ = ["Outcome", "live_channels", "missed_signals", "reconcile"]

log = logging.getLogger("callworker.reconcile")

# FreeSWITCH channel call states (switch_channel_callstate_t) that say how far a call got.
_RANG = frozenset({"RINGING", "EARLY", "RING_WAIT"})
_ANSWERED = frozenset({"ACTIVE", "HELD", "UNHELD"})


@dataclass
class Outcome:
    """What one reconciliation did."""

    ended: int = 0
    progressed: int = 0
    adopted: int = 0


def live_channels(port: FreeSwitchPort) -> dict[str, str]:
    """The channels FreeSWITCH has now: UUID -> call state (``show channels as json``)."""
    text = port.api(builders.show_channels_json()).strip()
    data = json.loads(text) if text.startswith("{") else {}
    return {
        str(row["uuid"]): str(row.get("callstate") or "").upper()
        for row in data.get("rows", [])
        if row.get("uuid")
    }


def missed_signals(callstate: str) -> list[Signal]:
    """The signals a channel in ``callstate`` has been through (ringing before answer).

    The state table ignores those the call already had, so applying them to a
    call that did see the events changes nothing.
    """
    if callstate in _ANSWERED:
        return [Signal.RINGING, Signal.ANSWERED]
    if callstate in _RANG:
        return [Signal.RINGING]
    return []


def reconcile(
    journal: Journal, port: FreeSwitchPort, *, in_flight: Container[str] = (), engine: Engine | None = None,
) -> int:
    """Settle and update the live calls; returns how many were ended.

    Only calls opened before this check started are considered, and none in
    ``in_flight`` (originates not yet handed to FreeSWITCH, e.g. waiting to be
    sent again on this new connection): such a call may not have its channel yet.
    """
    started = utcnow()
    before = [
        c.call_id for c in journal.calls.values()
        if c.initiated_at < started and c.call_id not in in_flight
    ]
    if not before and engine is None:
        return 0  # nothing to settle, and no database to find orphans in
    channels = live_channels(port)
    strangers = [u for u in channels if not journal.knows(u) and u not in in_flight]
    orphans = live_calls_by_id(engine, strangers) if engine is not None and strangers else []
    if not before and not orphans:
        return 0

    def op(unit: Unit) -> Outcome:
        outcome = _settle(unit, before, channels)
        outcome.adopted = _adopt(unit, orphans, channels)
        return outcome

    outcome: Outcome = journal.run(op)
    if outcome.ended or outcome.progressed or outcome.adopted:
        log.warning(
            "reconciled with FreeSWITCH: %d call(s) ended while the worker was away, "
            "%d brought up to date, %d adopted", outcome.ended, outcome.progressed, outcome.adopted,
        )
    return outcome.ended


def _adopt(unit: Unit, rows: list[dict], channels: dict[str, str]) -> int:
    """Take over live calls of another node id whose channels are on this FreeSWITCH."""
    adopted = 0
    for row in rows:
        if unit.call(row["call_id"]) is not None:
            continue
        record = CallRecord.from_row(row)
        record.node = unit.journal.node
        record.channel_seen = True
        unit.open_call(record)
        _catch_up(unit, record, channels.get(record.call_id, ""))
        adopted += 1
    return adopted


def _settle(unit: Unit, call_ids: list[str], channels: dict[str, str]) -> Outcome:
    """The journal operation: end the calls that are gone, catch up on the others."""
    outcome = Outcome()
    for call_id in call_ids:
        record = unit.call(call_id)
        if record is None or record.status in TERMINAL:
            continue
        if call_id in channels:
            record.channel_seen = True
            if _catch_up(unit, record, channels[call_id]):
                outcome.progressed += 1
        else:
            end_reconstructed(unit, record)
            outcome.ended += 1
    return outcome


def _catch_up(unit: Unit, record: CallRecord, callstate: str) -> bool:
    emitted = [unit.signal(record, signal, unit.now) for signal in missed_signals(callstate)]
    return any(event is not None for event in emitted)
