"""The simulator and the real FreeSWITCH side by side, for connected calls: two calls placed as
the worker places them (``&park()``, a time limit, comfort silence), joined with
``uuid_bridge``, one of them hung up; a dialplan transfer; a time limit running out.

Compared: the API replies, and what the worker reads of the legs' events — which leg
reports CHANNEL_BRIDGE / CHANNEL_UNBRIDGE and whom it names, each leg's CHANNEL_ANSWER
and CHANNEL_HANGUP_COMPLETE with its cause. (Where FreeSWITCH's threads race, the order
of different legs' events is not compared, only each leg's own.)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import gevent
import pytest

from callworker.esl import builders
from callworker.esl.codec import Event
from callworker.simulator import Simulator
from tests.freeswitch.realswitch import RealSwitch
from tests.sequences.link import EslLink

pytestmark = pytest.mark.freeswitch

WATCHED = ("CHANNEL_ANSWER", "CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE", "CHANNEL_HANGUP_COMPLETE")
Script = Callable[["Play"], None]


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    simulator = Simulator("127.0.0.1", 0, ring_delay=0.01, answer_delay=0.05)
    simulator.start()
    yield simulator
    simulator.stop()


class Play:
    """One script on one switch: legs named A, B by the script, their events, the API replies."""

    def __init__(self, address: tuple[str, int], password: str) -> None:
        self.watcher = EslLink(*address, password, events="ALL")
        self.commander = EslLink(*address, password)
        self.legs: dict[str, str] = {}
        self.replies: list[str] = []

    def name(self, value: str | None) -> str:
        for leg, call_id in self.legs.items():
            if value == call_id:
                return leg
        return "?" if value else "-"

    def events_of(self, leg: str) -> list[str]:
        """``leg``'s watched events as the worker reads them, legs by their script names."""
        call_id = self.legs[leg]
        return [
            f"{e.name} {self.name(e.get('Bridge-A-Unique-ID'))}{self.name(e.get('Bridge-B-Unique-ID'))}"
            f" {self.name(e.get('Other-Leg-Unique-ID')) if e.name != 'CHANNEL_ANSWER' else ''}"
            f" {e.get('Hangup-Cause') or ''}".rstrip()
            for e in self.watcher.events if e.name in WATCHED and e.get("Unique-ID") == call_id
        ]

    def wait(self, leg: str, name: str, timeout: float = 15.0) -> Event:
        call_id = self.legs[leg]

        def found() -> Event | None:
            return next((e for e in self.watcher.events if e.name == name and e.get("Unique-ID") == call_id), None)

        assert self.watcher.until(lambda: found() is not None, timeout), f"no {name} on {leg} ({self.replies})"
        event = found()
        assert event is not None
        return event

    def dial(self, leg: str, number: str, max_duration_s: int = 60) -> None:
        call_id = self.legs[leg] = str(uuid.uuid4())
        command = builders.originate(call_id=call_id, destination_number=number, gateway="default",
                                     timeout_s=10, max_duration_s=max_duration_s)
        self.commander.command(f"bgapi {command}", (("Job-UUID", call_id),))
        # As the worker does: a leg is bridged once parked, not on its answer (FreeSWITCH
        # answers +OK to a uuid_bridge before the originate's park, then parks it unbridged).
        self.wait(leg, "CHANNEL_PARK")

    def api(self, template: str) -> None:
        reply = self.commander.api(template.format(**self.legs))
        for leg, call_id in self.legs.items():
            reply = reply.replace(call_id, leg)
        self.replies.append(reply)

    def close(self) -> None:
        self.commander.close()
        self.watcher.close()


def _second_hangs_up(p: Play) -> None:
    p.dial("A", "+15552360001")
    p.dial("B", "+15552360002")
    p.api("uuid_bridge {A} {B}")
    p.wait("A", "CHANNEL_BRIDGE")
    p.api("uuid_kill {B}")
    p.wait("A", "CHANNEL_HANGUP_COMPLETE")
    p.wait("B", "CHANNEL_HANGUP_COMPLETE")


def _first_hangs_up(p: Play) -> None:
    p.dial("A", "+15552360003")
    p.dial("B", "+15552360004")
    p.api("uuid_bridge {A} {B}")
    p.wait("A", "CHANNEL_BRIDGE")
    p.api("uuid_kill {A} USER_BUSY")
    p.wait("A", "CHANNEL_HANGUP_COMPLETE")
    p.wait("B", "CHANNEL_HANGUP_COMPLETE")


def _bridge_refused_and_transfer(p: Play) -> None:
    p.dial("A", "+15552360005")
    p.legs["B"] = str(uuid.uuid4())  # no such channel
    p.api("uuid_bridge {A} {B}")
    p.api("uuid_transfer {B} 9100 XML default")
    p.api("uuid_transfer {A} 9100 XML default")
    p.api("uuid_kill {A}")
    p.wait("A", "CHANNEL_HANGUP_COMPLETE")


def _time_limit(p: Play) -> None:
    p.dial("A", "+15552360006", max_duration_s=1)
    p.wait("A", "CHANNEL_HANGUP_COMPLETE", timeout=10)


SCRIPTS: dict[str, Script] = {
    "second_hangs_up": _second_hangs_up,
    "first_hangs_up": _first_hangs_up,
    "bridge_refused_and_transfer": _bridge_refused_and_transfer,
    "time_limit": _time_limit,
}


def _play(script: Script, address: tuple[str, int], password: str) -> tuple[list[str], dict[str, list[str]]]:
    p = Play(address, password)
    try:
        script(p)
        # UNBRIDGE may follow the first leg's hangup on the switch's other thread: let it land.
        p.watcher.until(lambda: False, 0.3)
        return p.replies, {leg: p.events_of(leg) for leg in p.legs}
    finally:
        p.close()


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_simulator_connects_calls_as_the_real_switch(real_switch: RealSwitch, sim: Simulator, name: str) -> None:
    real = gevent.spawn(_play, SCRIPTS[name], ("127.0.0.1", real_switch.ports.esl), real_switch.password)
    simulated = gevent.spawn(_play, SCRIPTS[name], sim.address, "ClueCon")
    gevent.joinall([real, simulated], timeout=60, raise_error=True)
    assert real.value == simulated.value, f"{name}:\nswitch:    {real.value}\nsimulator: {simulated.value}"
