"""The simulator and the real FreeSWITCH, side by side: each scenario of ``tests.sequences``
played on both in one run, and compared (``tests.sequences.summary.compare``); and the real
switch compared with the recording the simulator's fast test relies on
(``tests/fixtures/freeswitch-1.10.12/sequences.json``), so the fixture cannot drift from
the switch and its configuration.

A BACKGROUND_JOB's place among the leg's events is a race between FreeSWITCH's threads, so
live it is held to the window where the switch can put it (``job_in_window``), not to the
place one play happened to show. The minute-long scenario (...0180 ringing until the far
end gives up) is left to the recording.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest

from callworker.simulator import Simulator
from tests.freeswitch.realswitch import RealSwitch
from tests.sequences.scenarios import SCENARIOS, FarEnd, Run, Scenario, play, real_far_end
from tests.sequences.summary import compare, summarise

pytestmark = pytest.mark.freeswitch

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "freeswitch-1.10.12" / "sequences.json"
LIVE = [s for s in SCENARIOS if not s.slow]


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    simulator = Simulator("127.0.0.1", 0, ring_delay=0.01, answer_delay=0.05,
                          far_end_hangup_after=0.3, long_ring=5.0)
    simulator.start()
    yield simulator
    simulator.stop()


def _sim_far_end(sim: Simulator) -> FarEnd:
    def hold(run: Run, on: bool) -> None:
        assert sim.far_end_hold(run.call_id, on)

    return hold


@pytest.mark.parametrize("scenario", LIVE, ids=[s.name for s in LIVE])
def test_simulator_matches_the_real_switch(
    real_switch: RealSwitch, sim: Simulator, scenario: Scenario
) -> None:
    real = gevent.spawn(play, scenario, ("127.0.0.1", real_switch.ports.esl), real_switch.password,
                        real_far_end)
    simulated = gevent.spawn(play, scenario, sim.address, "ClueCon", _sim_far_end(sim))
    gevent.joinall([real, simulated], timeout=60, raise_error=True)
    assert real.ready() and simulated.ready(), "a scenario did not end within 60 s"
    on_switch, on_simulator = summarise(real.value), summarise(simulated.value)
    problems = compare(on_switch, on_simulator)
    assert not problems, f"{scenario.name} ({scenario.about}):\n" + "\n".join(problems)
    recorded: dict[str, Any] = json.loads(FIXTURE.read_text())["scenarios"][scenario.name]
    drift = compare(recorded, on_switch, names=("recorded", "now"))
    assert not drift, f"{scenario.name}: the real switch no longer sends what was recorded:\n" + "\n".join(drift)
