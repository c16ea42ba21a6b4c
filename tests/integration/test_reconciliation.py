"""Reconciliation through the whole worker, against what a real FreeSWITCH can answer.

The simulator plays two truths of FreeSWITCH 1.10.12: ``show channels`` answering
``-ERR``, and a channel list that lags the core (a channel made a moment ago is
not listed yet). Neither may end a call that is still up. And when the journal
stalls (a slow database), the ESL connection keeps answering, events beyond the
overflow cap are dropped, and reconciliation repairs what they said once the
backlog has cleared.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import gevent.event
import pytest

from callworker.app import Worker
from callworker.bus.probe import Probe, Received
from callworker.simulator import Simulator
from callworker.store import call_events, get_cdr
from tests.integration.conftest import make_settings, start_worker

pytestmark = pytest.mark.integration

TERMINAL = {"call.completed", "call.failed", "call.cancelled"}
WAIT = 15.0


def originate(probe: Probe, tenant: str, number: str) -> str:
    sent = probe.send(tenant, "originate", destination_number=number, call_id=str(uuid.uuid4()))
    reply = probe.reply_for(sent["command_id"])
    assert reply["ok"], reply
    return str(sent["call_id"])


def wait_type(probe: Probe, call_id: str, event_type: str) -> Received:
    return probe.event(lambda e: e.get("call_id") == call_id and e["type"] == event_type)


def wait_until(worker: Worker, condition: Callable[[], bool], timeout: float = WAIT) -> None:
    """Until ``condition()`` holds, re-checked after every reconciliation attempt."""
    reconciler = worker.reconciler
    with gevent.Timeout(timeout, AssertionError(f"not reached within {timeout} s")):
        while not condition():
            reconciler.wait_attempts(reconciler.succeeded + reconciler.failed + 1, timeout)


def reconnect_and_reconcile(worker: Worker, simulator: Simulator) -> None:
    """Drop the ESL connection; return once the reconnect's reconciliation has succeeded."""
    connects, succeeded = worker.esl.stats.connects, worker.reconciler.succeeded
    simulator.drop_clients()
    wait_until(worker, lambda: worker.esl.stats.connects > connects
               and worker.reconciler.succeeded > succeeded and worker.reconciler.reconciled)


def hang_up_and_check_one_life(worker: Worker, probe: Probe, tenant: str, call_id: str) -> None:
    """The call is still up here and on FreeSWITCH; a hangup ends it once, with its real CDR."""
    assert call_id in worker.journal.calls
    sent = probe.send(tenant, "hangup", call_id=call_id)
    assert probe.reply_for(sent["command_id"])["ok"]
    wait_type(probe, call_id, "call.cdr")
    types = [row["type"] for row in call_events(worker.engine, call_id)]
    assert types == ["call.initiated", "call.ringing", "call.answered", "call.completed", "call.cdr"]
    cdr = get_cdr(worker.engine, tenant, call_id)
    assert cdr is not None and cdr["reconstructed"] is False


def test_an_err_channel_list_after_a_reconnect_ends_no_call(
    worker: Worker, probe: Probe, tenant: str, simulator: Simulator
) -> None:
    call_id = originate(probe, tenant, "+15551230001")
    wait_type(probe, call_id, "call.answered")
    failed = worker.reconciler.failed
    simulator.refuse_api("show channels", "-ERR no reply\n", times=2)
    reconnect_and_reconcile(worker, simulator)
    # Two unreadable answers, each tried again, then the list: the call is left as it is.
    assert worker.reconciler.failed >= failed + 2
    assert call_id in simulator.live_channels()
    hang_up_and_check_one_life(worker, probe, tenant, call_id)


def test_a_call_missing_from_a_lagging_channel_list_is_not_ended(
    worker: Worker, probe: Probe, tenant: str, simulator: Simulator
) -> None:
    simulator.channel_list_lag = 60.0  # the call is never listed during this test
    call_id = originate(probe, tenant, "+15551230001")
    wait_type(probe, call_id, "call.answered")
    reconnect_and_reconcile(worker, simulator)
    assert f"api uuid_exists {call_id}" in simulator.received_commands()
    assert call_id in simulator.live_channels()
    hang_up_and_check_one_life(worker, probe, tenant, call_id)


def test_a_call_that_ended_during_the_drop_is_still_settled_when_the_list_lags(
    worker: Worker, probe: Probe, tenant: str, simulator: Simulator
) -> None:
    simulator.channel_list_lag = 60.0
    call_id = originate(probe, tenant, "+15551230001")
    wait_type(probe, call_id, "call.answered")
    connects, succeeded = worker.esl.stats.connects, worker.reconciler.succeeded
    simulator.drop_clients()
    simulator.hangup(call_id)  # while nobody listens: its events are lost
    assert simulator.wait_ended(call_id, 5)
    wait_until(worker, lambda: worker.esl.stats.connects > connects
               and worker.reconciler.succeeded > succeeded)
    events = [e for e in [wait_type(probe, call_id, "call.cdr")]]
    assert events and call_id not in worker.journal.calls
    cdr = get_cdr(worker.engine, tenant, call_id)
    assert cdr is not None and cdr["reconstructed"] is True
    types = [row["type"] for row in call_events(worker.engine, call_id)]
    assert sum(t in TERMINAL for t in types) == 1 and types[-2:] == ["call.completed", "call.cdr"]


# ------------------------------------------------------------------ a stalled journal


@pytest.fixture
def small_buffers(simulator: Simulator, pg_url: str, amqp_url: str) -> Iterator[Worker]:
    """A worker whose event queue and overflow are tiny, so a short stall overflows them."""
    settings = make_settings(simulator, pg_url, amqp_url, esl_event_queue_size=20,
                             esl_event_overflow_mb=0.02, write_batch_max=10)
    worker = start_worker(settings)
    yield worker
    worker.stop()


def stall_journal(worker: Worker) -> gevent.event.Event:
    """Hold the journal's loop (as a database that stopped answering would); set to release."""
    release, held = gevent.event.Event(), gevent.event.Event()

    def hold(unit: Any) -> None:
        held.set()
        release.wait()

    gevent.spawn(worker.journal.run, hold)
    assert held.wait(5)
    return release


def test_a_stalled_journal_holds_up_no_reply_and_dropped_events_are_repaired(
    small_buffers: Worker, probe: Probe, tenant: str, simulator: Simulator
) -> None:
    worker = small_buffers
    wait_until(worker, lambda: worker.reconciler.reconciled)
    connects = worker.esl.stats.connects
    release = stall_journal(worker)
    try:
        # Calls go on meanwhile (a new call is committed beside the journal's loop); their
        # events pile up behind it, beyond the queue and the overflow cap.
        calls = [originate(probe, tenant, f"+1555{n:04d}0200") for n in range(40)]
        for call_id in calls:
            assert simulator.wait_ended(call_id, WAIT)  # answered, then hung up by the far end
        assert worker.esl_events.dropped > 0 and worker.esl_events.overflowed > 0
        assert worker.esl.api("status", timeout=2.0).startswith("UP ")  # replies still come
        assert not worker.health()[0]  # events were lost and not yet repaired
        succeeded = worker.reconciler.succeeded
    finally:
        release.set()
    wait_until(worker, lambda: worker.reconciler.succeeded > succeeded and worker.reconciler.reconciled)
    for call_id in calls:
        wait_type(probe, call_id, "call.cdr")
        types = [row["type"] for row in call_events(worker.engine, call_id)]
        assert sum(t in TERMINAL for t in types) == 1 and types[-1] == "call.cdr", types
        assert call_id not in worker.journal.calls
    assert worker.esl.stats.timeouts == 0 and worker.esl.stats.connects == connects
    assert worker.health()[0]
