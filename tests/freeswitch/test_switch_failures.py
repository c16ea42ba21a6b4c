"""FreeSWITCH gone: killed mid-call and restarted, or its event socket cut while calls are up.
Every call still ends exactly once with a CDR, and the worker works again afterwards."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from callworker.app import Worker
from callworker.bus.probe import Probe
from tests.faults.proxy import Proxy
from tests.freeswitch.conftest import start_switch, start_worker, switch_settings
from tests.freeswitch.realswitch import EslClient, RealSwitch
from tests.freeswitch.steps import TERMINAL, command, eventually, health, originate, stored_events, wait_type

pytestmark = pytest.mark.freeswitch


@pytest.fixture
def own_switch(freeswitch_tree: Path, tmp_path: Path) -> Iterator[RealSwitch]:
    """A FreeSWITCH of this test's own, free to be killed."""
    switch = start_switch(freeswitch_tree, tmp_path / "freeswitch")
    yield switch
    switch.stop()


def _free_port() -> int:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return int(probe_socket.getsockname()[1])


def _health_if(worker: Worker, status: int) -> tuple[int, dict[str, Any]] | None:
    answer = health(worker)
    return answer if answer[0] == status else None


def _ends_once(engine: Engine, call_id: str) -> list[str]:
    types = stored_events(engine, call_id)
    assert sum(t in TERMINAL for t in types) == 1, types
    assert types.count("call.cdr") == 1 and types[-1] == "call.cdr", types
    return types


def test_freeswitch_killed_mid_call_then_restarted(
    own_switch: RealSwitch, pg_url: str, amqp_url: str, probe: Probe, tenant: str,
) -> None:
    worker = start_worker(switch_settings(own_switch, pg_url, amqp_url))
    try:
        call_id = originate(probe, tenant, "+15551230001")
        wait_type(probe, call_id, "call.answered")

        own_switch.kill()
        _, body = eventually(lambda: _health_if(worker, 503), 15, "/healthz 503")
        assert body["freeswitch"]["connected"] is False and body["status"] == "degraded"

        own_switch.start()
        assert worker.esl.wait_connected(30), "the worker did not reconnect to the restarted switch"
        ended = wait_type(probe, call_id, "call.completed", timeout=30)
        assert ended["data"]["hangup_cause"] == "NORMAL_CLEARING"
        cdr = wait_type(probe, call_id, "call.cdr")["data"]
        assert cdr["answer_stamp"] is not None and cdr["end_stamp"] is not None
        eventually(lambda: _health_if(worker, 200), 15, "/healthz 200 again")

        # A new call works on the restarted switch, end to end.
        again = originate(probe, tenant, "+15551230002")
        wait_type(probe, again, "call.answered")
        assert command(probe, tenant, "hangup", call_id=again)["ok"]
        assert wait_type(probe, again, "call.cdr")["data"]["sip_hangup_disposition"] == "send_bye"
        assert _ends_once(worker.engine, call_id) == [
            "call.initiated", "call.answered", "call.completed", "call.cdr"
        ]
        _ends_once(worker.engine, again)
    finally:
        worker.stop()


def test_event_socket_cut_while_calls_are_up(
    real_switch: RealSwitch, pg_url: str, amqp_url: str, probe: Probe, tenant: str,
    switch_events: EslClient,
) -> None:
    proxy = Proxy(_free_port(), ("127.0.0.1", real_switch.ports.esl)).start()
    worker = start_worker(switch_settings(real_switch, pg_url, amqp_url, esl_port=proxy.port))
    try:
        gone, stays = "+15551230011", "+15551230012"
        gone_id, stays_id = originate(probe, tenant, gone), originate(probe, tenant, stays)
        far = {}
        for _ in range(2):
            answer = switch_events.event(
                lambda e: e.name == "CHANNEL_ANSWER" and (e.get("Channel-Name") or "").startswith("sofia/carrier/")
            )
            far[answer["Caller-Destination-Number"]] = answer["Unique-ID"]
        wait_type(probe, gone_id, "call.answered")
        wait_type(probe, stays_id, "call.answered")

        proxy.cut()
        assert proxy.next_refusal(10), "the worker did not try to reconnect"
        # While the worker hears nothing, the far end of one call hangs up.
        assert real_switch.api(f"uuid_kill {far[gone]}").startswith("+OK")
        switch_events.event(lambda e: e.name == "CHANNEL_HANGUP_COMPLETE" and e.get("Unique-ID") == gone_id)
        proxy.restore()
        assert worker.esl.wait_connected(20)

        # The call that ended unheard gets its ending and a CDR; the other is still controllable.
        assert wait_type(probe, gone_id, "call.completed", timeout=20)["data"]["hangup_cause"] == "NORMAL_CLEARING"
        wait_type(probe, gone_id, "call.cdr")
        assert command(probe, tenant, "hold", call_id=stays_id)["result"]["on_hold"] is True
        wait_type(probe, stays_id, "call.held")
        assert command(probe, tenant, "hangup", call_id=stays_id)["ok"]
        cdr = wait_type(probe, stays_id, "call.cdr")["data"]
        assert cdr["sip_hangup_disposition"] == "send_bye" and cdr["hangup_cause"] == "NORMAL_CLEARING"
        _ends_once(worker.engine, gone_id)
        _ends_once(worker.engine, stays_id)
    finally:
        worker.stop()
        proxy.stop()
