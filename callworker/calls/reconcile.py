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

The channel list is not the last word on a call. It comes from FreeSWITCH's SQL
table, filled by a thread of its own, so it lags the core: a channel made a
moment ago may be missing. A call missing from it is ended only once
``uuid_exists`` (which asks the core) answers ``false``; one that still exists is
left alone (its own events end it). An answer that cannot be read (``-ERR``, not
JSON, neither ``true`` nor ``false``) means "unknown", never "gone":
``reconcile`` raises ``FreeSwitchUnreadable`` and the caller tries again later.
Before deciding, the events FreeSWITCH sent ahead of its answers are journalled
(``caught_up``), so a call whose hangup was already on its way ends with its
real CDR rather than a reconstructed one. A call placed less than two seconds
ago whose channel was never seen is not ended either: FreeSWITCH answers a
``bgapi originate`` before its job thread has made the channel. Such calls are
settled by the next round (see ``resync.py``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import gevent.pool
from sqlalchemy.engine import Engine

from callworker.calls.fsevents import end_reconstructed
from callworker.calls.journal import Journal, Unit
from callworker.calls.record import CallRecord
from callworker.calls.states import TERMINAL, Signal
from callworker.contract import utcnow
from callworker.errors import FreeSwitchUnreadable
from callworker.esl import builders
from callworker.esl.port import FreeSwitchPort
from callworker.store import live_calls_by_id

__all__ = ["Outcome", "channel_exists", "live_channels", "missed_signals", "reconcile"]

log = logging.getLogger("callworker.reconcile")

# FreeSWITCH channel call states (switch_channel_callstate_t) that say how far a call got.
_RANG = frozenset({"RINGING", "EARLY", "RING_WAIT"})
_ANSWERED = frozenset({"ACTIVE", "HELD", "UNHELD"})
# uuid_exists questions in flight at once on the one connection (replies come in order).
_ASKING = 32
# FreeSWITCH answers a bgapi originate before its job thread has made the channel:
# a call this young whose channel was never seen may simply not have one yet.
_FRESH = timedelta(seconds=2)


@dataclass
class Outcome:
    """What one reconciliation did."""

    ended: int = 0
    progressed: int = 0
    adopted: int = 0
    checked: int = 0  # live calls compared with FreeSWITCH's channels
    kept: int = 0  # missing from the list, but FreeSWITCH still has the channel
    unknown: int = 0  # missing from the list, and uuid_exists gave no readable answer
    fresh: int = 0  # missing, placed a moment ago and no channel seen yet: left for next time


def live_channels(port: FreeSwitchPort) -> dict[str, str]:
    """The channels FreeSWITCH lists now: UUID -> call state (``show channels as json``).

    Raises FreeSwitchUnreadable when the answer is not a channel list.
    """
    text = port.api(builders.show_channels_json()).strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    rows = _rows(data)
    if rows is None:
        raise FreeSwitchUnreadable(f"show channels answered {text[:80]!r}")
    return {
        str(row["uuid"]): str(row.get("callstate") or "").upper()
        for row in rows
        if row.get("uuid")
    }


def _rows(data: Any) -> list[dict[str, Any]] | None:
    """The rows of ``{"row_count": N, "rows": [...]}``; None if it is not that shape."""
    if not isinstance(data, dict):
        return None
    count = data.get("row_count")
    rows = data.get("rows", [])
    if type(count) is not int or not isinstance(rows, list) or len(rows) != count:
        return None
    if not all(isinstance(row, dict) for row in rows):
        return None
    return rows


def channel_exists(port: FreeSwitchPort, call_id: str) -> bool:
    """``uuid_exists``: whether FreeSWITCH's core has the channel.

    Raises FreeSwitchUnreadable for any answer but ``true`` or ``false``.
    """
    text = port.api(builders.uuid_exists(call_id)).strip()
    if text in ("true", "false"):
        return text == "true"
    raise FreeSwitchUnreadable(f"uuid_exists answered {text[:80]!r}")


def _existence(port: FreeSwitchPort, call_ids: Iterable[str]) -> dict[str, bool | None]:
    """``uuid_exists`` of each call, asked a few at a time; None where the answer is unknown."""

    def ask(call_id: str) -> tuple[str, bool | None]:
        try:
            return call_id, channel_exists(port, call_id)
        except FreeSwitchUnreadable as exc:
            log.debug("call %s: %s", call_id, exc)
            return call_id, None

    return dict(gevent.pool.Pool(_ASKING).imap_unordered(ask, call_ids))


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
    caught_up: Callable[[], None] | None = None,
) -> Outcome:
    """Settle and update the live calls; what was done.

    Only calls opened before this check started are considered, and none in
    ``in_flight`` (originates not yet handed to FreeSWITCH, e.g. waiting to be
    sent again on this new connection): such a call may not have its channel yet.
    ``caught_up`` returns once the events read so far have been handed to the
    journal. Raises FreeSwitchUnreadable (after settling what is known) when
    FreeSWITCH's answer about some call could not be read.
    """
    started = utcnow()
    before = [
        c.call_id for c in journal.calls.values()
        if c.initiated_at < started and c.call_id not in in_flight
    ]
    if not before and engine is None:
        return Outcome()  # nothing to settle, and no database to find orphans in
    channels = live_channels(port)
    strangers = [u for u in channels if not journal.knows(u) and u not in in_flight]
    orphans = live_calls_by_id(engine, strangers) if engine is not None and strangers else []
    exists = _existence(port, [c for c in before if c not in channels])
    if not before and not orphans:
        return Outcome()
    if caught_up is not None:
        caught_up()

    def op(unit: Unit) -> Outcome:
        outcome = _settle(unit, before, channels, exists)
        outcome.adopted = _adopt(unit, orphans, channels)
        return outcome

    outcome: Outcome = journal.run(op)
    if outcome.ended or outcome.progressed or outcome.adopted:
        log.warning(
            "reconciled with FreeSWITCH: %d call(s) ended while the worker was away, "
            "%d brought up to date, %d adopted", outcome.ended, outcome.progressed, outcome.adopted,
        )
    if outcome.kept:
        log.info("%d call(s) missing from FreeSWITCH's channel list still exist; left as they are",
                 outcome.kept)
    if outcome.unknown:
        raise FreeSwitchUnreadable(
            f"FreeSWITCH gave no readable answer whether {outcome.unknown} call(s) still exist"
        )
    return outcome


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


def _settle(
    unit: Unit, call_ids: list[str], channels: dict[str, str], exists: dict[str, bool | None],
) -> Outcome:
    """The journal operation: end the calls that are gone, catch up on the others."""
    outcome = Outcome()
    for call_id in call_ids:
        record = unit.call(call_id)
        if record is None or record.status in TERMINAL:
            continue
        outcome.checked += 1
        if call_id in channels:
            record.channel_seen = True
            if _catch_up(unit, record, channels[call_id]):
                outcome.progressed += 1
        elif exists.get(call_id) is False:
            if not record.channel_seen and record.initiated_at > unit.now - _FRESH:
                outcome.fresh += 1
                continue
            end_reconstructed(unit, record)
            outcome.ended += 1
        elif exists.get(call_id):
            record.channel_seen = True  # FreeSWITCH made it; its own events will end it
            outcome.kept += 1
        else:
            outcome.unknown += 1
    return outcome


def _catch_up(unit: Unit, record: CallRecord, callstate: str) -> bool:
    emitted = [unit.signal(record, signal, unit.now) for signal in missed_signals(callstate)]
    return any(event is not None for event in emitted)
