"""Reconciliation: after a (re)connect, settle live calls that FreeSWITCH no longer has.

Events that FreeSWITCH sent while the worker was away are gone. A call the
worker still holds as live but FreeSWITCH does not know has ended meanwhile:
it gets its terminal event and a CDR marked as reconstructed, so every call
still ends exactly once.
"""

from __future__ import annotations

import json
import logging

from callworker.calls.cdr import synthetic_cdr_fields
from callworker.calls.fsevents import end_call
from callworker.calls.journal import Journal, Unit
from callworker.calls.states import ANSWERED_STATUSES, TERMINAL
from callworker.contract import utcnow
from callworker.esl import builders
from callworker.esl.port import FreeSwitchPort

__all__ = ["reconcile"]

log = logging.getLogger("callworker.reconcile")


def live_channels(port: FreeSwitchPort) -> set[str]:
    """UUIDs of the channels FreeSWITCH has now (``show channels as json``)."""
    text = port.api(builders.show_channels_json()).strip()
    data = json.loads(text) if text.startswith("{") else {}
    return {row.get("uuid", "") for row in data.get("rows", [])}


def reconcile(journal: Journal, port: FreeSwitchPort) -> int:
    """End the calls FreeSWITCH does not have; returns how many were ended.

    Only calls opened before this check started are considered: a call opened
    a moment ago may not have its channel yet.
    """
    started = utcnow()
    before = [c.call_id for c in journal.calls.values() if c.initiated_at < started]
    if not before:
        return 0
    channels = live_channels(port)
    gone = [call_id for call_id in before if call_id not in channels]
    if not gone:
        return 0

    def op(unit: Unit) -> int:
        ended = 0
        for call_id in gone:
            record = unit.call(call_id)
            if record is None or record.status in TERMINAL:
                continue
            answered = record.status in ANSWERED_STATUSES
            cause = "NORMAL_CLEARING" if answered else "NORMAL_TEMPORARY_FAILURE"
            cdr = synthetic_cdr_fields(record, cause, unit.now)
            if answered and record.answered_at is not None:
                cdr["answer_stamp"] = record.answered_at
            end_call(unit, record, cause=cause, occurred_at=unit.now, cdr=cdr, reconstructed=True)
            ended += 1
        return ended

    ended = journal.run(op)
    log.warning("reconciled %d call(s) that ended while the worker was away", ended)
    return int(ended)
