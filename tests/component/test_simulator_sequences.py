"""The simulator sends what the real FreeSWITCH 1.10.12 sends, scenario by scenario.

Each scenario of ``tests.sequences`` (every CONTRACT section 7 outcome, hangups while
ringing and answered, hold both ways, mute, a UUID in use) is played on the simulator
over TCP and compared with the recording of the real switch in
``tests/fixtures/freeswitch-1.10.12/sequences.json`` (see the README beside it): the
events of the leg and those the worker subscribes to, in order; the headers the worker
reads, present and of the same shape; where each BACKGROUND_JOB falls and what it says;
the api replies. ``tests/freeswitch/test_simulator_matches_switch.py`` makes the same
comparison live against the real switch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callworker.calls import cdr
from callworker.simulator import Simulator
from tests.sequences.scenarios import SCENARIOS, FarEnd, Run, Scenario, play
from tests.sequences.summary import CDR_READS, SUBSCRIBED_EVENTS, compare, summarise

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "freeswitch-1.10.12" / "sequences.json"


@pytest.fixture(scope="module")
def recorded() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())["scenarios"]


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    # ...0180 gives up after 1.5 s: after the 1 s timeout of one scenario, long before the
    # 90 s of the other.
    simulator = Simulator("127.0.0.1", 0, ring_delay=0.01, answer_delay=0.03,
                          far_end_hangup_after=0.2, long_ring=1.5)
    simulator.start()
    yield simulator
    simulator.stop()


def far_end(sim: Simulator) -> FarEnd:
    def hold(run: Run, on: bool) -> None:
        assert sim.far_end_hold(run.call_id, on)

    return hold


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_simulator_sends_what_the_real_switch_sent(
    sim: Simulator, recorded: dict[str, Any], scenario: Scenario
) -> None:
    real = recorded[scenario.name]
    recording = play(scenario, sim.address, "ClueCon", far_end(sim))
    problems = compare(real, summarise(recording), observed=True)
    assert not problems, f"{scenario.name} ({scenario.about}):\n" + "\n".join(problems)


def test_the_recordings_are_of_these_scenarios_and_of_what_the_worker_reads(
    sim: Simulator, recorded: dict[str, Any]
) -> None:
    assert list(recorded) == [s.name for s in SCENARIOS]
    # The worker's CDR reads nothing the recordings lack, and subscribes to nothing more:
    # else they must be recorded again (tests/freeswitch/record_sequences.py).
    assert set(cdr._CDR_READS.names) <= set(CDR_READS)
    seen = {name for entry in recorded.values() for name in entry["subscribed"]}
    assert seen <= set(SUBSCRIBED_EVENTS)
    # The calls were placed as the worker places them today.
    recording = play(SCENARIOS[0], sim.address, "ClueCon", far_end(sim))
    placed = [text.replace(recording.call_id, "<call_id>").replace(recording.number, "<number>")
              for text in recording.originates]
    assert placed == recorded[SCENARIOS[0].name]["originates"]
