"""Reconciliation brings calls up to date with FreeSWITCH's channel list (journal on SQLite)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from gevent.queue import Queue
from sqlalchemy.engine import Engine

from callworker.calls.fsevents import EventPump
from callworker.calls.journal import Journal, Unit
from callworker.calls.reconcile import live_channels, missed_signals, reconcile
from callworker.calls.record import CallRecord
from callworker.calls.states import Signal, Status
from callworker.contract import call_snapshot, utcnow
from callworker.esl.codec import Event
from callworker.store import call_events, get_call, get_cdr, make_engine, migrate

TENANT = "acme"


class Channels:
    """A FreeSWITCH port that only answers ``show channels as json``, from a dict uuid -> callstate."""

    def __init__(self) -> None:
        self.connected = True
        self.states: dict[str, str] = {}
        self.asked = 0

    def wait_connected(self, timeout: float) -> bool:
        return self.connected

    def api(self, command: str, *, timeout: float | None = None) -> str:
        assert command == "show channels as json"
        self.asked += 1
        rows = [{"uuid": u, "callstate": s, "state": "CS_EXECUTE"} for u, s in self.states.items()]
        return json.dumps({"row_count": len(rows), "rows": rows}) if rows else '{"row_count": 0}\n'

    def bgapi(self, command: str, *, job_uuid: str | None = None, timeout: float | None = None) -> str:
        raise AssertionError("reconciliation never dials")


ENGINES: dict[int, Engine] = {}  # journal -> its engine, to read back what it wrote


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    url = f"sqlite:///{tmp_path / 'reconcile.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    journal = Journal(engine, node="fs1", notify=lambda items: None)
    ENGINES[id(journal)] = engine
    journal.start()
    yield journal
    journal.stop()
    del ENGINES[id(journal)]
    engine.dispose()


def engine_of(journal: Journal) -> Engine:
    return ENGINES[id(journal)]


def open_call(journal: Journal, status: Status = Status.INITIATED) -> str:
    """A live call as the worker holds it after a restart (opened a moment ago)."""
    call_id = str(uuid.uuid4())
    record = CallRecord(call_id=call_id, tenant=TENANT, node="fs1", direction="outbound",
                        status=Status.INITIATED, initiated_at=utcnow() - timedelta(seconds=1),
                        destination_number="+15551230001")

    def op(unit: Unit) -> None:
        unit.open_call(record)
        unit.emit(record, "call.initiated", unit.now, call_snapshot(record, now=unit.now))
        if status is not Status.INITIATED:
            unit.signal(record, Signal.RINGING, unit.now)

    journal.run(op)
    return call_id


def types(journal: Journal, call_id: str) -> list[str]:
    return [row["type"] for row in call_events(engine_of(journal), call_id)]


def hangup_complete(call_id: str) -> Event:
    values = {"Event-Name": "CHANNEL_HANGUP_COMPLETE", "Unique-ID": call_id,
              "Event-Date-Timestamp": "1700000000000000", "variable_hangup_cause": "NORMAL_CLEARING",
              "variable_hangup_cause_q850": "16", "variable_answer_uepoch": "1699999990000000"}
    return Event(values, None, encoded=False)


def test_a_call_answered_while_the_worker_was_away_ends_completed(journal: Journal) -> None:
    call_id = open_call(journal)
    port = Channels()
    port.states[call_id] = "ACTIVE"
    assert reconcile(journal, port) == 0
    assert types(journal, call_id) == ["call.initiated", "call.ringing", "call.answered"]
    assert journal.calls[call_id].status is Status.ANSWERED
    EventPump(Queue(), journal).handle(hangup_complete(call_id))
    journal.run(lambda unit: None)
    assert types(journal, call_id)[-2:] == ["call.completed", "call.cdr"]
    cdr = get_cdr(engine_of(journal), TENANT, call_id)
    assert cdr is not None and cdr["reconstructed"] is False


def test_a_ringing_call_catches_up_once_and_repeating_changes_nothing(journal: Journal) -> None:
    call_id = open_call(journal)
    port = Channels()
    port.states[call_id] = "EARLY"
    reconcile(journal, port)
    reconcile(journal, port)
    assert types(journal, call_id) == ["call.initiated", "call.ringing"]
    port.states[call_id] = "HELD"
    reconcile(journal, port)
    assert types(journal, call_id) == ["call.initiated", "call.ringing", "call.answered"]
    row = get_call(engine_of(journal), TENANT, call_id)
    assert row is not None and row["status"] == "answered" and row["last_seq"] == 3


def test_calls_gone_from_freeswitch_end_once_with_a_reconstructed_cdr(journal: Journal) -> None:
    ringing, kept = open_call(journal, Status.RINGING), open_call(journal)
    port = Channels()
    port.states[kept] = "RINGING"
    assert reconcile(journal, port) == 1
    assert types(journal, ringing)[-2:] == ["call.failed", "call.cdr"]
    cdr = get_cdr(engine_of(journal), TENANT, ringing)
    assert cdr is not None and cdr["reconstructed"] is True
    assert reconcile(journal, port) == 0
    assert types(journal, ringing).count("call.failed") == 1
    assert not journal.knows(ringing) and journal.knows(kept)


def test_calls_whose_originate_is_on_its_way_are_left_alone(journal: Journal) -> None:
    dialling = open_call(journal)
    assert reconcile(journal, Channels(), in_flight={dialling}) == 0
    assert types(journal, dialling) == ["call.initiated"] and journal.knows(dialling)


def test_no_live_call_asks_freeswitch_nothing(journal: Journal) -> None:
    port = Channels()
    assert reconcile(journal, port) == 0 and port.asked == 0


@pytest.mark.parametrize(("callstate", "signals"), [
    ("DOWN", []), ("DIALING", []), ("RINGING", [Signal.RINGING]), ("EARLY", [Signal.RINGING]),
    ("ACTIVE", [Signal.RINGING, Signal.ANSWERED]), ("HELD", [Signal.RINGING, Signal.ANSWERED]),
    ("UNHELD", [Signal.RINGING, Signal.ANSWERED]), ("HANGUP", []), ("", []),
])
def test_missed_signals_follow_the_channel_call_state(callstate: str, signals: list[Signal]) -> None:
    assert missed_signals(callstate) == signals


def test_live_channels_reads_freeswitch_json_and_its_empty_answer() -> None:
    port: Any = Channels()
    assert live_channels(port) == {}
    port.states = {"a": "active", "b": ""}
    assert live_channels(port) == {"a": "ACTIVE", "b": ""}
