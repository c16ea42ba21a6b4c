"""A 30 s database outage at 100 calls/s: replies keep coming and no call is lost.

While PostgreSQL is away the journal cannot commit, so FreeSWITCH's events pile up
in front of it: those of the calls in flight when it went, and those of the calls
whose far end hangs up meanwhile (the test hangs up every call still up, halfway
through). No new call is placed meanwhile (an originate waits for its own commit):
the app's originates wait in RabbitMQ. The app gives up on a dial after 5 s
(``expires_at``), so most of the ~3,000 expire and are dead-lettered, never
dialled; the rest arrive at once when PostgreSQL returns, on top of the traffic.
The worker runs here with small buffers (an event
queue of 20, a journal queue of two batches of 10, an overflow of 100 KB), so the
backlog goes past the queue, into the overflow and past its cap: events are
dropped. The ESL connection must stay up all along with every api and bgapi
answered in time (no timeouts, no reconnects), and once the database is back every
call must end exactly once with a CDR: what the dropped events said is repaired by
the reconciliation that follows the backlog.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.faults.rig import Rig
from tests.faults.test_faults import assert_held

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

RATE = 100.0
WORKER_ENV = {
    "CALLWORKER_ESL_EVENT_QUEUE_SIZE": "20",
    "CALLWORKER_WRITE_BATCH_MAX": "10",
    "CALLWORKER_ESL_EVENT_OVERFLOW_MB": "0.1",
    "CALLWORKER_ESL_SEND_TIMEOUT_S": "5",
}
OUTAGE_S = 30.0


def test_a_database_outage_at_100_calls_per_second(rig: Rig) -> None:
    before = rig.worker.metrics()
    connections = rig.simulator.stats.connections
    seen: dict[str, Any] = {}

    def outage() -> None:
        rig.pg_proxy.cut()
        rig.driver.expires_in = 5.0
        try:
            seen["health"] = rig.worker.wait_health(
                lambda status, body: status == 503 and not body["database"]["reachable"], timeout=10)
            rig.traffic_for(OUTAGE_S / 2)  # the app goes on publishing; its commands wait
            seen["hung up"] = rig.simulator.live_channels()
            for call_id in seen["hung up"]:
                rig.simulator.hangup(call_id)  # the far end: events the journal cannot take yet
            rig.traffic_for(OUTAGE_S / 2)
            seen["during"] = rig.worker.metrics()
        finally:
            rig.driver.expires_in = None
            rig.pg_proxy.restore()

    figures = rig.run_phase("backlog", f"PostgreSQL down {OUTAGE_S:g} s at {RATE:g} calls/s", outage,
                            lead=4.0, tail=4.0, settle_s=120.0)
    after = rig.worker.metrics()
    report(before, seen["during"], after)

    assert seen["health"] is not None, "/healthz did not report the database down"
    assert seen["hung up"], "no call was up halfway through the outage"
    assert after["callworker_esl_events_dropped"] > before["callworker_esl_events_dropped"], \
        "the backlog never went past the overflow cap: the phase tested nothing"
    assert after["callworker_reconciliations"] > before["callworker_reconciliations"]
    assert after["callworker_esl_reply_timeouts"] == before["callworker_esl_reply_timeouts"]
    assert after["callworker_esl_connects"] == before["callworker_esl_connects"]
    assert rig.simulator.stats.connections == connections, "the worker connected to FreeSWITCH again"
    assert_held(figures)
    assert figures.expired > 0, "no originate waited past its expiry: the outage was not felt"


def report(before: dict[str, float], during: dict[str, float], after: dict[str, float]) -> None:
    """What the worker's metrics say about the outage (printed with -s)."""
    moved = {name.removeprefix("callworker_"): after[name] - before.get(name, 0.0) for name in after
             if name.startswith(("callworker_esl_events", "callworker_esl_reply", "callworker_esl_connects",
                                 "callworker_reconciliations"))}
    print(f"\nheld at the end of the outage: {during['callworker_esl_event_queue']:g} events, "
          f"{during['callworker_esl_event_overflow_bytes']:g} bytes beyond the queue; "
          f"overflow peak {after['callworker_esl_event_overflow_peak_bytes']:g} bytes; {moved}")
