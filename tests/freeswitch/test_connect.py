"""What an answered call is connected to, on the real switch: park with a time limit, a
dialplan extension, and a second call bridged to it (click-to-call); the transfer command.

The carrier answers any number with a tone and stays up, 0200 answers and hangs up after
2 s, 0486 is busy. The overlay's ``default`` context has extension 9100, which fires the
hook ``menu_reached`` on the call it is given, then plays a tone.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import gevent.event
import pytest

from callworker.app import Worker
from callworker.bus.probe import Probe, Received
from tests.freeswitch.conftest import hang_up_everything, start_worker, switch_settings
from tests.freeswitch.realswitch import EslClient, RealSwitch
from tests.freeswitch.steps import assert_well_formed, command, originate, wait_type

pytestmark = pytest.mark.freeswitch


@pytest.fixture
def worker(real_switch: RealSwitch, pg_url: str, amqp_url: str) -> Iterator[Worker]:
    settings = switch_settings(real_switch, pg_url, amqp_url, contexts=("default", "callworker_test_hooks"))
    w = start_worker(settings)
    yield w
    hang_up_everything(real_switch)
    w.stop()


def types(events: list[Received]) -> list[str]:
    return [e["type"] for e in events]


def click_to_call(probe: Probe, tenant: str, first: str, second: str, **connect: Any) -> tuple[str, str]:
    """Originate to ``first`` connected to ``second``: both call ids."""
    call_id = str(uuid.uuid4())
    reply = command(probe, tenant, "originate", destination_number=first, call_id=call_id,
                    connect={"to": "number", "destination_number": second, **connect})
    assert reply["ok"], reply
    assert reply["result"]["call_id"] == call_id and reply["result"]["status"] == "initiated"
    return call_id, reply["result"]["connect_call_id"]


def test_max_duration_ends_an_answered_call_with_allotted_timeout(
    worker: Worker, probe: Probe, tenant: str, switch_events: EslClient,
) -> None:
    call_id = originate(probe, tenant, "+15552340001", max_duration_s=2)
    answered = wait_type(probe, call_id, "call.answered")
    events = sorted([answered, *probe.call_events_until_terminal(call_id, timeout=10)], key=lambda e: e["seq"])
    assert types(events) == ["call.initiated", "call.answered", "call.completed", "call.cdr"]
    assert events[2]["data"]["hangup_cause"] == "ALLOTTED_TIMEOUT"
    assert events[3]["data"]["billsec"] == 2
    assert_well_formed(events, tenant, worker.settings.node_id)


def test_a_parked_call_sends_comfort_silence(
    worker: Worker, probe: Probe, tenant: str, switch_events: EslClient,
) -> None:
    """The far end receives RTP from the parked call: carriers drop a call that sends nothing.

    (Parked without send_silence_when_idle, the carrier's leg receives no packet at all.)
    """
    number = "+15552340002"
    call_id = originate(probe, tenant, number)
    wait_type(probe, call_id, "call.answered")
    gevent.event.Event().wait(2.0)  # the window measured, not a synchronisation
    command(probe, tenant, "hangup", call_id=call_id)
    far_end = switch_events.event(
        lambda e: e.name == "CHANNEL_HANGUP_COMPLETE" and e.get("Caller-Destination-Number") == number
        and (e.get("Channel-Name") or "").startswith("sofia/carrier/"))
    # 20 ms packets: about 100 in 2 s.
    assert int(far_end.get("variable_rtp_audio_in_packet_count") or 0) >= 50
    probe.call_events_until_terminal(call_id)


def test_click_to_call_bridges_two_calls_and_ends_both_when_the_first_hangs_up(
    worker: Worker, probe: Probe, tenant: str,
) -> None:
    first, second = click_to_call(probe, tenant, "+15552340011", "+15552340012", caller_id_number="+15550009999")
    assert second != first
    wait_type(probe, first, "call.answered")
    assert wait_type(probe, second, "call.answered")["data"]["destination_number"] == "+15552340012"
    bridged_first = wait_type(probe, first, "call.bridged")["data"]
    bridged_second = wait_type(probe, second, "call.bridged")["data"]
    assert bridged_first["bridged_with"] == second and bridged_second["bridged_with"] == first
    got = command(probe, tenant, "call.get", call_id=first)["result"]
    assert got["bridged_with"] == second and got["status"] == "answered"

    command(probe, tenant, "hangup", call_id=first)
    for call_id, other in ((first, second), (second, first)):
        events = probe.call_events_until_terminal(call_id)
        assert types(events)[-2:] == ["call.completed", "call.cdr"]
        cdr = events[-1]["data"]
        assert cdr["bridged_with"] == other and cdr["answer_stamp"] is not None
    stored = command(probe, tenant, "call.events", call_id=second)["result"]["events"]
    assert [e["type"] for e in stored] == [
        "call.initiated", "call.answered", "call.bridged", "call.completed", "call.cdr",
    ]
    assert [e["seq"] for e in stored] == [1, 2, 3, 4, 5]
    assert {e["node"] for e in stored} == {worker.settings.node_id}  # the first call's node


def test_click_to_call_ends_the_first_call_when_the_second_hangs_up(
    worker: Worker, probe: Probe, tenant: str,
) -> None:
    first, second = click_to_call(probe, tenant, "+15552340021", "+15552340200")  # answers, ends after 2 s
    wait_type(probe, second, "call.bridged")
    second_events = probe.call_events_until_terminal(second)
    first_events = probe.call_events_until_terminal(first)
    assert types(second_events)[-2:] == ["call.completed", "call.cdr"]
    assert "call.unbridged" in types(first_events)
    assert types(first_events)[-2:] == ["call.completed", "call.cdr"]
    assert first_events[-1]["data"]["bridged_with"] == second


def test_click_to_call_to_a_busy_number_ends_the_first_call(
    worker: Worker, probe: Probe, tenant: str,
) -> None:
    chosen = str(uuid.uuid4())
    first, second = click_to_call(probe, tenant, "+15552340031", "+15552340486", call_id=chosen)
    assert second == chosen
    second_events = probe.call_events_until_terminal(second)
    assert types(second_events)[-2:] == ["call.failed", "call.cdr"]
    assert second_events[-1]["data"]["hangup_cause"] == "USER_BUSY"
    first_events = probe.call_events_until_terminal(first)
    assert types(first_events) == ["call.initiated", "call.answered", "call.completed", "call.cdr"]
    # The user's phone is told why: the second call's cause.
    assert first_events[-1]["data"]["hangup_cause"] == "USER_BUSY"
    assert first_events[-1]["data"]["bridged_with"] is None


def test_a_redelivered_click_to_call_places_each_call_once(
    worker: Worker, probe: Probe, tenant: str, switch_events: EslClient,
) -> None:
    call_id = str(uuid.uuid4())
    body: dict[str, Any] = {"destination_number": "+15552340041", "call_id": call_id,
            "connect": {"to": "number", "destination_number": "+15552340042"}}
    sent = probe.send(tenant, "originate", **body)
    first_reply = probe.reply_for(sent["command_id"], timeout=15)
    again = probe.send(tenant, "originate", command_id=sent["command_id"], **body)
    assert probe.reply_for(again["command_id"], timeout=15)["result"] == first_reply["result"]
    second = first_reply["result"]["connect_call_id"]
    wait_type(probe, second, "call.bridged")
    command(probe, tenant, "hangup", call_id=second)
    probe.call_events_until_terminal(second)
    probe.call_events_until_terminal(call_id)
    created = [e for e in _drain(switch_events) if e.name == "CHANNEL_CREATE"
               and e.get("Unique-ID") in (call_id, second)]
    assert sorted(e["Unique-ID"] for e in created) == sorted([call_id, second])


def _drain(client: EslClient) -> list[Any]:
    drained = []
    while not client.events.empty():
        drained.append(client.events.get_nowait())
    return drained


def test_connect_to_an_extension_hands_the_answered_call_to_the_dialplan(
    worker: Worker, probe: Probe, tenant: str,
) -> None:
    call_id = str(uuid.uuid4())
    reply = command(probe, tenant, "originate", destination_number="+15552340051", call_id=call_id,
                    connect={"to": "extension", "extension": "9100"})
    assert reply["ok"] and "connect_call_id" not in reply["result"]
    wait_type(probe, call_id, "call.answered")
    reached = wait_type(probe, call_id, "hook.menu_reached")
    assert reached["data"] == {"menu": "9100"}
    command(probe, tenant, "hangup", call_id=call_id)
    assert types(probe.call_events_until_terminal(call_id))[-2:] == ["call.completed", "call.cdr"]


def test_an_unlisted_context_is_refused_and_nothing_is_dialled(
    worker: Worker, probe: Probe, tenant: str,
) -> None:
    reply = command(probe, tenant, "originate", destination_number="+15552340061",
                    connect={"to": "extension", "extension": "9100", "context": "public"})
    assert reply["ok"] is False and reply["error"]["code"] == "VALIDATION_ERROR"
    assert reply["error"]["details"]["field"] == "connect.context"


def test_transfer_of_a_parked_call_to_an_extension_and_to_a_number(
    worker: Worker, probe: Probe, tenant: str,
) -> None:
    call_id = originate(probe, tenant, "+15552340071")
    wait_type(probe, call_id, "call.answered")
    reply = command(probe, tenant, "transfer", call_id=call_id,
                    connect={"to": "extension", "extension": "hooks", "context": "callworker_test_hooks"})
    assert reply["result"] == {"call_id": call_id, "status": "answered"}
    transferred = wait_type(probe, call_id, "call.transferred")["data"]
    assert transferred["connect"] == {"to": "extension", "extension": "hooks", "context": "callworker_test_hooks"}
    wait_type(probe, call_id, "hook.survey_done")

    reply = command(probe, tenant, "transfer", call_id=call_id,
                    connect={"to": "number", "destination_number": "+15552340072"})
    second = reply["result"]["connect_call_id"]
    assert reply["result"] == {"call_id": call_id, "status": "answered", "connect_call_id": second}
    assert wait_type(probe, call_id, "call.transferred")["data"]["connect_call_id"] == second
    assert wait_type(probe, call_id, "call.bridged")["data"]["bridged_with"] == second
    wait_type(probe, second, "call.bridged")
    command(probe, tenant, "hangup", call_id=second)
    assert probe.call_events_until_terminal(second)[-1]["data"]["bridged_with"] == call_id
    assert probe.call_events_until_terminal(call_id)[-1]["data"]["bridged_with"] == second


def test_only_an_answered_call_can_be_transferred(worker: Worker, probe: Probe, tenant: str) -> None:
    call_id = originate(probe, tenant, "+15552340408", timeout_s=10)  # rings until cancelled
    wait_type(probe, call_id, "call.ringing")
    reply = command(probe, tenant, "transfer", call_id=call_id,
                    connect={"to": "number", "destination_number": "+15552340081"})
    assert reply["ok"] is False and reply["error"]["code"] == "CALL_NOT_ACTIVE"
    command(probe, tenant, "hangup", call_id=call_id)
    assert types(probe.call_events_until_terminal(call_id))[-2:] == ["call.cancelled", "call.cdr"]


def test_transfer_of_a_bridged_call_to_another_number_drops_the_old_party(
    worker: Worker, probe: Probe, tenant: str,
) -> None:
    first, old = click_to_call(probe, tenant, "+15552340091", "+15552340092")
    wait_type(probe, old, "call.bridged")
    reply = command(probe, tenant, "transfer", call_id=first,
                    connect={"to": "number", "destination_number": "+15552340093"})
    new = reply["result"]["connect_call_id"]
    # FreeSWITCH takes the first call out of the old bridge and hangs up the old party.
    old_events = probe.call_events_until_terminal(old)
    # It ends while bridged: its terminal event (FreeSWITCH's UNBRIDGE comes after its hangup).
    assert types(old_events)[-2:] == ["call.completed", "call.cdr"]
    assert old_events[-1]["data"]["bridged_with"] == first
    assert wait_type(probe, first, "call.bridged")["data"]["bridged_with"] == old  # the first bridge
    assert wait_type(probe, first, "call.unbridged")["data"]["bridged_with"] == old
    assert wait_type(probe, first, "call.bridged")["data"]["bridged_with"] == new
    assert command(probe, tenant, "call.get", call_id=first)["result"]["bridged_with"] == new
    command(probe, tenant, "hangup", call_id=new)
    assert probe.call_events_until_terminal(new)[-1]["data"]["bridged_with"] == first
    first_events = probe.call_events_until_terminal(first)
    assert types(first_events)[-2:] == ["call.completed", "call.cdr"]
    assert first_events[-1]["data"]["bridged_with"] == new
