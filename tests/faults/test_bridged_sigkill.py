"""A worker SIGKILLed during a bridged call (click-to-call): both legs end once, each with
one terminal event and one CDR, whether they end while the worker is dead or after it is back.

The worker runs as a process against the simulator (the fault rig, no traffic). While it
is dead, FreeSWITCH's bridge still does its part: one leg hanging up ends the other.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from callworker.bus.probe import Probe
from tests.faults.rig import Rig

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TERMINAL = ("call.completed", "call.failed", "call.cancelled")


@pytest.fixture
def app(rig: Rig) -> Iterator[tuple[Probe, str]]:
    rig.ensure_ready()
    tenant = f"b{uuid.uuid4().hex[:10]}"
    probe = Probe(f"{rig.amqp_url}?heartbeat=0", event_bindings=(f"{tenant}.#",))
    yield probe, tenant
    probe.close()


def bridged_call(probe: Probe, tenant: str) -> tuple[str, str]:
    first = str(uuid.uuid4())
    sent = probe.send(tenant, "originate", destination_number="+15551230001", call_id=first,
                      connect={"to": "number", "destination_number": "+15551230002"})
    second = probe.reply_for(sent["command_id"], timeout=15)["result"]["connect_call_id"]
    for call_id in (first, second):
        probe.event(lambda e, c=call_id: e.get("call_id") == c and e["type"] == "call.bridged", 15)
    return first, second


def assert_ended_once(rig: Rig, probe: Probe, first: str, second: str, *, reconstructed: bool) -> None:
    for call_id in (first, second):
        events = probe.call_events_until_terminal(call_id, timeout=40)
        assert events[-2]["type"] == "call.completed", [e["type"] for e in events]
    with rig.engine.connect() as conn:
        for call_id, other in ((first, second), (second, first)):
            stored = [row[0] for row in conn.execute(
                text("SELECT type FROM call_events WHERE call_id = :c ORDER BY seq"), {"c": call_id})]
            assert sum(t in TERMINAL for t in stored) == 1 and stored.count("call.cdr") == 1, stored
            cdr = conn.execute(text("SELECT bridged_with, reconstructed FROM cdrs WHERE call_id = :c"),
                               {"c": call_id}).one()
            assert cdr.bridged_with == other and cdr.reconstructed is reconstructed


def test_both_legs_ending_while_the_worker_is_dead_end_once_after_restart(
    rig: Rig, app: tuple[Probe, str],
) -> None:
    probe, tenant = app
    first, second = bridged_call(probe, tenant)
    rig.worker.kill()
    rig.simulator.hangup(second)  # the second party hangs up; the bridge ends the first leg
    assert rig.simulator.wait_ended(second, 10) and rig.simulator.wait_ended(first, 10)
    rig.worker.start()
    rig.worker.wait_healthy(timeout=30)
    assert_ended_once(rig, probe, first, second, reconstructed=True)


def test_a_bridge_that_outlives_the_worker_ends_both_legs_once_after_restart(
    rig: Rig, app: tuple[Probe, str],
) -> None:
    probe, tenant = app
    first, second = bridged_call(probe, tenant)
    rig.worker.kill()
    rig.worker.start()
    rig.worker.wait_healthy(timeout=30)
    sent = probe.send(tenant, "hangup", call_id=first)
    assert probe.reply_for(sent["command_id"], timeout=15)["ok"]
    assert_ended_once(rig, probe, first, second, reconstructed=False)
