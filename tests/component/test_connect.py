"""Connections, event by event: the call service with its Connector, the journal on SQLite, the
event pump, and a fake FreeSWITCH port that records what would reach the socket.

FreeSWITCH's events are fed in the order the real switch sends them (tests/freeswitch/
test_connect.py plays the same on it), including the orders that race: a second call
answered after the first one ended, a hangup while the second call rings.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gevent.queue import Queue

from callworker.bus.relay import OutboxItem
from callworker.calls.connect import Connector
from callworker.calls.fsevents import EventPump
from callworker.calls.journal import Journal
from callworker.calls.service import CallService, Delivered
from callworker.contract import ContractError
from callworker.store import get_call, get_cdr, make_engine, migrate
from tests.component.test_call_service import FakePort, command, fs_event, published_types


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'calls.sqlite3'}"
        migrate(url)
        self.engine = make_engine(url)
        self.published: list[OutboxItem] = []
        self.journal = Journal(self.engine, node="fs1", notify=self.published.extend)
        self.journal.start()
        self.port = FakePort()
        self.connector = Connector(journal=self.journal, port=self.port, engine=self.engine, node="fs1",
                                   gateways=("default",), default_gateway="default",
                                   contexts=("default", "ivr"), max_duration_s=14400)
        self.journal.observers.append(self.connector.on_call_event)
        self.service = CallService(journal=self.journal, port=self.port, engine=self.engine, node="fs1",
                                   gateways=("default",), default_gateway="default", connector=self.connector)
        self.pump = EventPump(Queue(), self.journal)
        for name in ("CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE", "CHANNEL_PARK"):
            self.pump.on(name, self.connector.on_switch_event)

    def run(self, command_type: str, **fields: Any) -> dict[str, Any]:
        reply = self.service.execute(command(command_type, **fields), Delivered(None, None))
        self.settle()
        return reply

    def feed(self, name: str, call_id: str, **headers: str) -> None:
        self.pump.handle(fs_event(name, call_id, **headers))
        self.settle()

    def settle(self) -> None:
        """Everything submitted is committed, and what it set off (a dial, a bridge) has run."""
        for _ in range(3):
            self.journal.run(lambda unit: None)

    def sent_since(self, mark: int) -> list[str]:
        return self.port.sent[mark:]

    def types(self, call_id: str) -> list[str]:
        return published_types(self.published, call_id)

    def click_to_call(self, second_number: str = "+15551230002") -> tuple[str, str]:
        reply = self.run("originate", destination_number="+15551230001",
                         connect={"to": "number", "destination_number": second_number})
        return reply["result"]["call_id"], reply["result"]["connect_call_id"]

    def close(self) -> None:
        self.journal.stop()
        self.engine.dispose()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    built = Rig(tmp_path)
    yield built
    built.close()


def bridge_headers(a: str, b: str) -> dict[str, str]:
    return {"Bridge-A-Unique-ID": a, "Bridge-B-Unique-ID": b, "Other-Leg-Unique-ID": b}


def test_the_second_call_is_placed_on_answer_and_bridged_once_parked(rig: Rig) -> None:
    first, second = rig.click_to_call()
    assert [line.split("}")[-1] for line in rig.port.sent] == ["sofia/gateway/default/+15551230001 &park()"]
    mark = len(rig.port.sent)
    rig.feed("CHANNEL_ANSWER", first)
    dial = rig.sent_since(mark)
    assert len(dial) == 1 and f"origination_uuid={second}" in dial[0]
    assert dial[0].endswith("sofia/gateway/default/+15551230002 &park()")
    assert rig.types(second) == ["call.initiated"]

    mark = len(rig.port.sent)
    rig.feed("CHANNEL_ANSWER", second)
    assert rig.sent_since(mark) == []  # not on the answer: FreeSWITCH would lose that bridge
    rig.feed("CHANNEL_PARK", second)
    rig.feed("CHANNEL_PARK", second)  # repeated: one bridge
    assert rig.sent_since(mark) == [f"api uuid_bridge {first} {second}"]

    rig.feed("CHANNEL_BRIDGE", first, **bridge_headers(first, second))
    assert rig.types(first)[-1] == "call.bridged" and rig.types(second)[-1] == "call.bridged"
    assert get_call(rig.engine, "acme", first)["bridged_with"] == second  # type: ignore[index]

    mark = len(rig.port.sent)
    rig.feed("CHANNEL_UNBRIDGE", first, **bridge_headers(first, second))
    rig.feed("CHANNEL_HANGUP_COMPLETE", first, **{"Hangup-Cause": "NORMAL_CLEARING"})
    rig.feed("CHANNEL_HANGUP_COMPLETE", second, **{"Hangup-Cause": "NORMAL_CLEARING"})
    assert rig.sent_since(mark) == []  # a bridge's other leg is ended by FreeSWITCH itself
    assert rig.types(first)[-4:] == ["call.bridged", "call.unbridged", "call.completed", "call.cdr"]
    assert rig.types(second)[-3:] == ["call.unbridged", "call.completed", "call.cdr"]
    assert get_cdr(rig.engine, "acme", first)["bridged_with"] == second  # type: ignore[index]
    assert get_cdr(rig.engine, "acme", second)["bridged_with"] == first  # type: ignore[index]


def test_a_busy_second_call_ends_the_first_with_its_cause(rig: Rig) -> None:
    first, second = rig.click_to_call()
    rig.feed("CHANNEL_ANSWER", first)
    mark = len(rig.port.sent)
    rig.feed("CHANNEL_HANGUP_COMPLETE", second, **{"Hangup-Cause": "USER_BUSY"})
    assert rig.sent_since(mark) == [f"api uuid_kill {first} USER_BUSY"]
    assert rig.types(second)[-2:] == ["call.failed", "call.cdr"]
    assert get_cdr(rig.engine, "acme", second)["bridged_with"] is None  # type: ignore[index]


def test_the_first_call_ending_while_the_second_rings_cancels_the_second(rig: Rig) -> None:
    first, second = rig.click_to_call()
    rig.feed("CHANNEL_ANSWER", first)
    rig.feed("CHANNEL_PROGRESS", second)
    mark = len(rig.port.sent)
    rig.feed("CHANNEL_HANGUP_COMPLETE", first, **{"Hangup-Cause": "NORMAL_CLEARING"})
    assert rig.sent_since(mark) == [f"api uuid_kill {second} NORMAL_CLEARING"]
    rig.feed("CHANNEL_HANGUP_COMPLETE", second, **{"Hangup-Cause": "ORIGINATOR_CANCEL"})
    assert rig.types(second)[-2:] == ["call.cancelled", "call.cdr"]


def test_a_second_call_answered_after_the_first_ended_is_not_bridged_but_ended(rig: Rig) -> None:
    first, second = rig.click_to_call()
    rig.feed("CHANNEL_ANSWER", first)
    # FreeSWITCH's answer of the second leg raced the first leg's hangup.
    rig.feed("CHANNEL_ANSWER", second)
    rig.feed("CHANNEL_HANGUP_COMPLETE", first, **{"Hangup-Cause": "NORMAL_CLEARING"})
    mark = len(rig.port.sent)
    rig.feed("CHANNEL_PARK", second)
    assert rig.sent_since(mark) == [f"api uuid_kill {second} NORMAL_CLEARING"]


def test_a_first_call_transferred_while_the_second_rings_is_not_taken_back(rig: Rig) -> None:
    first, second = rig.click_to_call()
    rig.feed("CHANNEL_ANSWER", first)
    rig.run("transfer", call_id=first, connect={"to": "extension", "extension": "9100"})
    rig.feed("CHANNEL_ANSWER", second)
    mark = len(rig.port.sent)
    rig.feed("CHANNEL_PARK", second)
    assert rig.sent_since(mark) == [f"api uuid_kill {second} NORMAL_CLEARING"]
    mark = len(rig.port.sent)
    rig.feed("CHANNEL_HANGUP_COMPLETE", second, **{"Hangup-Cause": "NORMAL_CLEARING"})
    assert rig.sent_since(mark) == []  # the first call, in the dialplan now, stays up
    assert rig.types(first)[-1] == "call.transferred"


def test_a_second_call_whose_park_was_never_read_is_bridged_after_reconciliation(rig: Rig) -> None:
    first, second = rig.click_to_call()
    rig.feed("CHANNEL_ANSWER", first)
    rig.feed("CHANNEL_ANSWER", second)  # 2023-11-14: long ago; its CHANNEL_PARK was lost
    mark = len(rig.port.sent)
    rig.connector.rearm()
    rig.settle()
    rig.connector.rearm()  # again: one bridge
    rig.settle()
    assert rig.sent_since(mark) == [f"api uuid_bridge {first} {second}"]


def test_a_second_call_answered_a_moment_ago_waits_for_its_park(rig: Rig) -> None:
    first, second = rig.click_to_call()
    rig.feed("CHANNEL_ANSWER", first)
    rig.pump.handle(fs_event("CHANNEL_ANSWER", second, **{"Event-Date-Timestamp": str(int(time.time() * 1e6))}))
    rig.settle()
    mark = len(rig.port.sent)
    rig.connector.rearm()
    rig.settle()
    assert rig.sent_since(mark) == []


def test_an_unanswered_first_call_places_no_second_call(rig: Rig) -> None:
    first, second = rig.click_to_call()
    rig.feed("CHANNEL_HANGUP_COMPLETE", first, **{"Hangup-Cause": "USER_BUSY"})
    assert len(rig.port.sent) == 1
    assert get_call(rig.engine, "acme", second) is None


def test_transfer_to_an_extension_and_to_a_number(rig: Rig) -> None:
    first = rig.run("originate", destination_number="+15551230001")["result"]["call_id"]
    rig.feed("CHANNEL_ANSWER", first)
    mark = len(rig.port.sent)
    reply = rig.run("transfer", call_id=first, connect={"to": "extension", "extension": "*98", "context": "ivr"})
    assert reply["result"] == {"call_id": first, "status": "answered"}
    assert rig.sent_since(mark) == [f"api uuid_transfer {first} *98 XML ivr"]
    assert rig.types(first)[-1] == "call.transferred"

    chosen = str(uuid.uuid4())
    mark = len(rig.port.sent)
    reply = rig.run("transfer", call_id=first,
                    connect={"to": "number", "destination_number": "+15551230003", "call_id": chosen})
    assert reply["result"] == {"call_id": first, "status": "answered", "connect_call_id": chosen}
    sent = rig.sent_since(mark)
    assert len(sent) == 1 and f"origination_uuid={chosen}" in sent[0]
    assert rig.types(chosen) == ["call.initiated"]


@pytest.mark.parametrize(("connect", "field"), [
    ({"to": "extension", "extension": "9100", "context": "public"}, "connect.context"),
    ({"to": "number", "destination_number": "+15551230003", "gateway": "other"}, "connect.gateway"),
])
def test_a_transfer_refused_by_the_settings_sends_nothing(rig: Rig, connect: dict[str, Any], field: str) -> None:
    first = rig.run("originate", destination_number="+15551230001")["result"]["call_id"]
    rig.feed("CHANNEL_ANSWER", first)
    mark = len(rig.port.sent)
    with pytest.raises(ContractError) as refused:
        rig.run("transfer", call_id=first, connect=connect)
    assert refused.value.details["field"] == field
    assert refused.value.dead_letter
    assert rig.sent_since(mark) == []


def test_a_client_call_id_in_use_is_refused(rig: Rig) -> None:
    first = rig.run("originate", destination_number="+15551230001")["result"]["call_id"]
    with pytest.raises(ContractError) as refused:
        rig.run("originate", destination_number="+15551230001",
                connect={"to": "number", "destination_number": "+15551230002", "call_id": first})
    assert refused.value.details["field"] == "connect.call_id"
