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
from callworker.errors import FreeSwitchUnreadable
from callworker.esl.codec import Event
from callworker.store import call_events, get_call, get_cdr, make_engine, migrate

TENANT = "acme"


class Channels:
    """A FreeSWITCH port that answers ``show channels as json`` and ``uuid_exists``.

    ``states`` is the channel list (uuid -> callstate); ``also_exist`` are channels
    the core has that the list does not show yet (it lags); ``answers`` replace
    the answer to one command line.
    """

    def __init__(self) -> None:
        self.connected = True
        self.states: dict[str, str] = {}
        self.also_exist: set[str] = set()
        self.answers: dict[str, str] = {}
        self.asked: list[str] = []

    def wait_connected(self, timeout: float) -> bool:
        return self.connected

    def api(self, command: str, *, timeout: float | None = None) -> str:
        self.asked.append(command)
        if command in self.answers:
            return self.answers[command]
        if command.startswith("uuid_exists "):
            uuid_ = command.split()[1]
            return "true" if uuid_ in self.states or uuid_ in self.also_exist else "false"
        assert command == "show channels as json"
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


def open_call(journal: Journal, status: Status = Status.INITIATED, *, age_s: float = 10.0) -> str:
    """A live call, placed ``age_s`` ago, whose channel the worker has not heard of."""
    call_id = str(uuid.uuid4())
    record = CallRecord(call_id=call_id, tenant=TENANT, node="fs1", direction="outbound",
                        status=Status.INITIATED, initiated_at=utcnow() - timedelta(seconds=age_s),
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
    assert reconcile(journal, port).ended == 0
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
    assert reconcile(journal, port).ended == 1
    assert types(journal, ringing)[-2:] == ["call.failed", "call.cdr"]
    cdr = get_cdr(engine_of(journal), TENANT, ringing)
    assert cdr is not None and cdr["reconstructed"] is True
    assert reconcile(journal, port).ended == 0
    assert types(journal, ringing).count("call.failed") == 1
    assert not journal.knows(ringing) and journal.knows(kept)


def test_calls_whose_originate_is_on_its_way_are_left_alone(journal: Journal) -> None:
    dialling = open_call(journal)
    assert reconcile(journal, Channels(), in_flight={dialling}).ended == 0
    assert types(journal, dialling) == ["call.initiated"] and journal.knows(dialling)


def test_no_live_call_asks_freeswitch_nothing(journal: Journal) -> None:
    port = Channels()
    assert reconcile(journal, port).ended == 0 and port.asked == []


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


# ------------------------------------------------------------- what FreeSWITCH's answers mean


@pytest.mark.parametrize("reply", [
    "-ERR no reply\n", "", "+OK\n", "not json", "[]", '{"rows": []}', '{"row_count": "0"}',
    '{"row_count": 2, "rows": [{"uuid": "a"}]}', '{"row_count": 1, "rows": ["a"]}',
], ids=["err", "empty", "ok", "text", "array", "no-count", "count-text", "short", "not-rows"])
def test_an_unreadable_channel_list_is_unknown_and_ends_nothing(journal: Journal, reply: str) -> None:
    call_id = open_call(journal, Status.RINGING)
    port = Channels()
    port.answers["show channels as json"] = reply
    with pytest.raises(FreeSwitchUnreadable):
        reconcile(journal, port)
    assert journal.knows(call_id) and types(journal, call_id) == ["call.initiated", "call.ringing"]
    assert port.asked == ["show channels as json"]


def test_a_call_missing_from_a_lagging_list_ends_only_when_freeswitch_says_it_is_gone(
    journal: Journal,
) -> None:
    lagging, gone = open_call(journal), open_call(journal)
    port = Channels()
    port.also_exist.add(lagging)  # the core has it; the SQL table does not list it yet
    assert reconcile(journal, port).ended == 1
    assert journal.knows(lagging) and types(journal, lagging) == ["call.initiated"]
    assert journal.calls[lagging].channel_seen
    assert types(journal, gone)[-2:] == ["call.failed", "call.cdr"]
    assert sorted(port.asked[1:]) == sorted([f"uuid_exists {lagging}", f"uuid_exists {gone}"])
    # Listed next time: its progress is caught up then.
    port.also_exist.clear()
    port.states[lagging] = "ACTIVE"
    reconcile(journal, port)
    assert types(journal, lagging) == ["call.initiated", "call.ringing", "call.answered"]


def test_a_channel_still_listed_after_it_is_gone_is_settled_once_it_leaves_the_list(
    journal: Journal,
) -> None:
    call_id = open_call(journal, Status.RINGING)
    port = Channels()
    port.states[call_id] = "HANGUP"  # the table lags the destruction too
    assert reconcile(journal, port).ended == 0 and journal.knows(call_id)
    del port.states[call_id]
    assert reconcile(journal, port).ended == 1 and not journal.knows(call_id)


def test_an_unreadable_uuid_exists_is_unknown_and_the_rest_is_settled(journal: Journal) -> None:
    unclear, gone = open_call(journal), open_call(journal)
    port = Channels()
    port.answers[f"uuid_exists {unclear}"] = "-ERR no reply\n"
    with pytest.raises(FreeSwitchUnreadable):
        reconcile(journal, port)
    assert journal.knows(unclear) and types(journal, unclear) == ["call.initiated"]
    assert not journal.knows(gone)
    del port.answers[f"uuid_exists {unclear}"]
    assert reconcile(journal, port).ended == 1 and not journal.knows(unclear)


def test_a_call_placed_a_moment_ago_is_left_for_the_next_round(journal: Journal) -> None:
    # The originate was accepted; FreeSWITCH's job thread may not have made the channel.
    young = open_call(journal, age_s=0.5)
    port = Channels()
    assert reconcile(journal, port).ended == 0 and journal.knows(young)
    journal.calls[young].initiated_at -= timedelta(seconds=5)
    assert reconcile(journal, port).ended == 1 and not journal.knows(young)


def test_events_read_before_the_answers_are_journalled_before_deciding(journal: Journal) -> None:
    call_id = open_call(journal)
    port = Channels()  # the channel is gone: its hangup was read just before the answers
    pump = EventPump(Queue(), journal)
    assert reconcile(journal, port, caught_up=lambda: pump.handle(hangup_complete(call_id))).ended == 0
    assert types(journal, call_id) == ["call.initiated", "call.answered", "call.completed", "call.cdr"]
    cdr = get_cdr(engine_of(journal), TENANT, call_id)
    assert cdr is not None and cdr["reconstructed"] is False
