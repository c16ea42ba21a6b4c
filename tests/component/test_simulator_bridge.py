"""The simulator connects calls as FreeSWITCH 1.10.12 does: ``uuid_bridge`` (CHANNEL_BRIDGE and
CHANNEL_UNBRIDGE on the first leg, naming both; either leg's hangup ends the other),
``uuid_transfer``, and a time limit set with ``execute_on_answer=sched_hangup``.

Reply texts and event shapes are those the real switch gave (tests/freeswitch/test_connect.py
runs the same on it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from callworker.esl.codec import Event
from callworker.simulator import Simulator
from tests.component.test_simulator import Client, dial, uuid_of

A, B = uuid_of(901), uuid_of(902)


@pytest.fixture
def client() -> Iterator[Client]:
    simulator = Simulator("127.0.0.1", 0, ring_delay=0.01, answer_delay=0.02)
    simulator.start()
    c = Client(simulator.address)
    c.auth()
    yield c
    c.close()
    simulator.stop()


def answered(client: Client, number: str, uuid: str, extra: str = "") -> None:
    client.command("event plain ALL")
    assert client.api(dial(number, uuid, extra)) == f"+OK {uuid}\n"


def hangup_of(client: Client, uuid: str) -> Event:
    return client.wait_event(lambda e: e.name == "CHANNEL_HANGUP_COMPLETE" and e.get("Unique-ID") == uuid)


def bridged_pair(client: Client) -> Event:
    answered(client, "15550000001", A)
    answered(client, "15550000002", B)
    assert client.api(f"uuid_bridge {A} {B}") == f"+OK {B}\n"
    return client.wait_event(lambda e: e.name == "CHANNEL_BRIDGE")


def test_uuid_bridge_fires_channel_bridge_on_the_first_leg_naming_both(client: Client) -> None:
    event = bridged_pair(client)
    assert event.get("Unique-ID") == A
    assert event.get("Bridge-A-Unique-ID") == A and event.get("Bridge-B-Unique-ID") == B
    assert event.get("Other-Leg-Unique-ID") == B


def hangups(client: Client, *uuids: str) -> dict[str, str | None]:
    """The hangup cause of each leg, whichever ends first; UNBRIDGE events noted as "unbridge"."""
    seen: dict[str, str | None] = {}
    while not set(uuids) <= set(seen):
        e = client.wait_event(lambda e: e.name in ("CHANNEL_HANGUP_COMPLETE", "CHANNEL_UNBRIDGE"))
        key = str(e.get("Unique-ID"))
        seen[key if e.name == "CHANNEL_HANGUP_COMPLETE" else f"unbridge {key}"] = e.get("Hangup-Cause")
    return seen


def test_hanging_up_the_second_leg_unbridges_and_ends_the_first(client: Client) -> None:
    bridged_pair(client)
    assert client.api(f"uuid_kill {B}") == "+OK\n"
    seen = hangups(client, A, B)
    assert seen[A] == "NORMAL_CLEARING" and seen[B] == "NORMAL_CLEARING"
    assert f"unbridge {A}" in seen


def test_hanging_up_the_first_leg_ends_the_second(client: Client) -> None:
    bridged_pair(client)
    assert client.api(f"uuid_kill {A} USER_BUSY") == "+OK\n"
    seen = hangups(client, A, B)
    assert (seen[A], seen[B]) == ("USER_BUSY", "NORMAL_CLEARING")


def test_uuid_bridge_and_uuid_transfer_answer_as_the_real_switch(client: Client) -> None:
    assert client.api("uuid_bridge") == "-USAGE: <uuid> <other_uuid>\n"
    assert client.api(f"uuid_bridge {A} {B}") == "-ERR Invalid uuid\n"
    assert client.api(f"uuid_transfer {A} 9100 XML default") == "-ERR No such channel!\n"
    assert client.api("uuid_transfer") == "-USAGE: <uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]\n"
    answered(client, "15550000003", A)
    assert client.api(f"uuid_bridge {A} {B}") == "-ERR Invalid uuid\n"
    assert client.api(f"uuid_transfer {A} 9100 XML default") == "+OK\n"
    assert client.api(f"uuid_exists {A}") == "true"


def test_execute_on_answer_sched_hangup_ends_the_call_after_its_time(client: Client) -> None:
    started = time.monotonic()
    answered(client, "15550000004", A, ",execute_on_answer='sched_hangup +1 ALLOTTED_TIMEOUT'")
    assert hangup_of(client, A).get("Hangup-Cause") == "ALLOTTED_TIMEOUT"
    assert 0.9 <= time.monotonic() - started < 3.0
