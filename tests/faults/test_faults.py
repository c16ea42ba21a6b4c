"""Nothing lost, nothing doubled, under faults: each test runs calls through one fault.

Traffic flows the whole time (calls that answer and end by themselves, busy
calls, calls hung up by command, some originates republished); while it flows
the test cuts RabbitMQ, drops the ESL connection, makes FreeSWITCH unreachable,
SIGKILLs the worker, cuts the database, or stops the worker gracefully; then it
waits for quiescence and checks the contract's invariants across the app's,
FreeSWITCH's and the database's view (``ledger.py``). The figures of every
phase are printed at the end of the session and kept in bench-results/faults.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from callworker.bus.topology import EVENTS_EXCHANGE
from callworker.esl.buffer import EventBuffer
from callworker.esl.connection import EslConnection
from callworker.simulator import Simulator
from tests.faults.ledger import Figures, outbox_backlog
from tests.faults.rig import Rig
from tests.faults.traffic import Sent

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]


def assert_held(figures: Figures, *, allow_unsent: bool = False) -> None:
    """The invariants: exactly once or expired, every event published, one ending per call.

    An originate written into an ESL connection that FreeSWITCH had just closed
    (``in_transit``) may or may not have run, as far as the worker can tell, so it
    is never sent again: it is settled as failed. One never written at all
    (``unsent``) is a fault of the worker, unless the worker was killed between
    committing the call and sending it.
    """
    assert not figures.problems, "\n".join(figures.problems)
    assert figures.doubled == 0
    assert figures.executed + figures.expired + figures.in_transit + figures.unsent == figures.originates
    assert allow_unsent or figures.unsent == 0, f"{figures.unsent} accepted originates were never sent"
    assert figures.missing == 0 and figures.published == figures.expected
    assert figures.reordered == 0, "a call's events first arrived out of seq order"
    assert figures.one_terminal == figures.cdr_rows == figures.cdr_events == figures.calls
    assert figures.calls > 0


def test_no_fault(rig: Rig) -> None:
    figures = rig.run_phase("none", "none (reference)", lambda: None, lead=3.0, tail=2.0)
    assert_held(figures)
    assert figures.reconstructed == 0 and figures.status_differs == 0


def test_rabbitmq_connection_cut(rig: Rig) -> None:
    seen: dict[str, Any] = {}

    def cut() -> None:
        rig.amqp_proxy.cut()
        seen["health"] = rig.worker.wait_health(
            lambda status, body: status == 503 and not body["rabbitmq"]["connected"], timeout=10)
        rig.traffic_for(3.0)  # the outage: calls go on, their events wait in the outbox
        seen["backlog"] = outbox_backlog(rig.engine, rig.node)
        rig.amqp_proxy.restore()

    figures = rig.run_phase("rabbitmq", "RabbitMQ connection cut for 3 s", cut)
    assert seen["health"] is not None, "/healthz did not report RabbitMQ down"
    assert int(seen["backlog"]) > 0, "no events accumulated in the outbox during the outage"
    assert_held(figures)


def test_esl_connection_dropped(rig: Rig) -> None:
    before = rig.simulator.stats.connections

    def drop() -> None:
        for _ in range(5):
            rig.simulator.drop_clients()
            rig.traffic_for(1.2)  # traffic between the drops

    figures = rig.run_phase("esl", "ESL connection dropped 5 times", drop)
    assert rig.simulator.stats.connections >= before + 5, "the worker did not reconnect to FreeSWITCH"
    assert_held(figures)


def test_freeswitch_unreachable(rig: Rig) -> None:
    seen: dict[str, Any] = {}
    expiring: list[Sent] = []

    def outage() -> None:
        rig.esl_proxy.cut()
        seen["health"] = rig.worker.wait_health(
            lambda status, body: status == 503 and not body["freeswitch"]["connected"], timeout=10)
        # Commands wait in the queue meanwhile; these come due before FreeSWITCH is back.
        expiring.extend(rig.driver.originate_expiring(within_s=1.0) for _ in range(5))
        rig.traffic_for(4.0)  # the outage
        rig.esl_proxy.restore()

    figures = rig.run_phase("freeswitch", "FreeSWITCH unreachable for 4 s", outage)
    assert seen["health"] is not None, "/healthz did not report FreeSWITCH down"
    assert figures.expired == len(expiring)
    assert_held(figures)


def test_worker_killed_and_restarted(rig: Rig) -> None:
    expiring: list[Sent] = []

    def kill() -> None:
        rig.worker.kill()
        # Commands that come due while the worker is away are expired, never executed late.
        expiring.extend(rig.driver.originate_expiring(within_s=0.5) for _ in range(5))
        rig.traffic_for(2.0)  # the outage; the expiring commands are past due before the restart
        rig.worker.start()
        rig.worker.wait_healthy(timeout=30)

    figures = rig.run_phase("sigkill", "worker SIGKILLed, restarted after 2 s", kill)
    assert figures.expired == len(expiring)
    assert_held(figures, allow_unsent=True)


def test_database_unreachable(rig: Rig) -> None:
    seen: dict[str, Any] = {}

    def cut() -> None:
        rig.pg_proxy.cut()
        seen["health"] = rig.worker.wait_health(
            lambda status, body: status == 503 and not body["database"]["reachable"], timeout=10)
        rig.traffic_for(3.0)  # the outage
        rig.pg_proxy.restore()
        # Then a flapping link: each cut lands right after the worker has sent a
        # journal batch (its outbox rows name the events exchange), a commit in flight
        # whose outcome it cannot know, and the link comes back once a reconnect has
        # been refused.
        proxy = rig.pg_proxy
        for _ in range(20):
            proxy.next_forward(timeout=5, containing=EVENTS_EXCHANGE.encode())
            proxy.cut()
            proxy.next_refusal(timeout=5)
            proxy.restore()

    figures = rig.run_phase("database", "PostgreSQL down 3 s, then 20 cuts on statements in flight", cut)
    assert seen["health"] is not None, "/healthz did not report the database down"
    assert_held(figures)


def test_freeswitch_lost_while_the_database_is_down(rig: Rig) -> None:
    seen: dict[str, Any] = {}

    def outage() -> None:
        # A channel of another application: reconciliation must ask the database
        # whether it is a call of this worker's under another node id.
        with other_application_call(rig.simulator) as other:
            rig.pg_proxy.cut()
            assert rig.worker.wait_health(lambda status, body: not body["database"]["reachable"], timeout=10)
            rig.esl_proxy.cut()
            # The calls up end now, unheard: only reconciliation can settle them.
            seen["ended"] = [c for c in rig.simulator.live_channels() if c != other]
            for call_id in seen["ended"]:
                rig.simulator.hangup(call_id)
            rig.traffic_for(1.5)
            failed = rig.worker.metrics()["callworker_reconciliations_failed"]
            rig.esl_proxy.restore()
            # Connected again, but not reconciled: the database is needed for that.
            seen["unreconciled"] = rig.worker.wait_health(
                lambda status, body: status == 503 and body["freeswitch"]["connected"]
                and not body["freeswitch"]["reconciled"], timeout=10)
            rig.traffic_for(3.0)
            seen["retried"] = rig.worker.metrics()["callworker_reconciliations_failed"] - failed
            rig.pg_proxy.restore()
            rig.worker.wait_healthy(timeout=30)

    figures = rig.run_phase("esl+database", "FreeSWITCH lost while PostgreSQL is down", outage)
    assert seen["unreconciled"] is not None, "/healthz did not report the worker unreconciled"
    assert seen["retried"] >= 2, "reconciliation was not tried again while the database was down"
    assert seen["ended"] and figures.reconstructed >= len(seen["ended"])
    assert_held(figures)


@contextmanager
def other_application_call(simulator: Simulator) -> Iterator[str]:
    """A call up on FreeSWITCH that callworker did not place, for the duration."""
    host, port = simulator.address
    other = EslConnection(host, port, "ClueCon", events=("CHANNEL_CREATE",),
                          event_queue=EventBuffer(10, 0), connect_timeout=2.0)
    other.start()
    call_id = str(uuid.uuid4())
    try:
        assert other.wait_connected(5)
        reply = other.api(f"originate {{origination_uuid={call_id}}}sofia/gateway/default/+15557770001 &park()")
        assert reply.startswith("+OK"), reply
        yield call_id
    finally:
        if other.connected:
            other.api(f"uuid_kill {call_id}")
        other.stop()


def test_graceful_restart(rig: Rig) -> None:
    seen: dict[str, int] = {}

    def restart() -> None:
        seen["exit"] = rig.worker.terminate(timeout=30)
        seen["backlog"] = outbox_backlog(rig.engine, rig.node)
        rig.worker.start()
        rig.worker.wait_healthy(timeout=30)

    figures = rig.run_phase("sigterm", "worker SIGTERMed and restarted", restart)
    assert seen["exit"] == 0
    assert seen["backlog"] == 0, "the outbox was not flushed before the worker exited"
    assert_held(figures)
