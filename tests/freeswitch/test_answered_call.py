"""An answered call on the real switch: held and resumed (both ways), muted, hung up; what the
far end receives; and what may not be done to a call before it is answered."""

from __future__ import annotations

import time

import pytest

from callworker.app import Worker
from callworker.bus.probe import Probe
from tests.freeswitch.realswitch import EslClient
from tests.freeswitch.steps import assert_well_formed, command, originate, wait_type

pytestmark = pytest.mark.freeswitch


def far_leg(switch_events: EslClient, number: str, event_name: str = "CHANNEL_ANSWER") -> str:
    """The carrier's leg of the call to ``number`` (the far end), once it shows ``event_name``."""
    event = switch_events.event(
        lambda e: e.name == event_name and (e.get("Channel-Name") or "").startswith("sofia/carrier/")
        and e.get("Caller-Destination-Number") == number
    )
    return event["Unique-ID"]


def test_answered_call_held_resumed_muted_and_hung_up(
    fs_worker: Worker, probe: Probe, tenant: str, switch_events: EslClient,
) -> None:
    number = "+15551230001"
    call_id = originate(probe, tenant, number, caller_id_number="+15550001111", caller_id_name="Front Desk")
    far_leg(switch_events, number)
    wait_type(probe, call_id, "call.answered")

    assert command(probe, tenant, "hold", call_id=call_id)["result"] == {"call_id": call_id, "on_hold": True}
    held = wait_type(probe, call_id, "call.held")["data"]
    assert held["on_hold"] is True and held["status"] == "on_hold" and held["held_by"] == "us"
    assert command(probe, tenant, "hold", call_id=call_id, hold=False)["result"]["on_hold"] is False
    unheld = wait_type(probe, call_id, "call.unheld")["data"]
    assert unheld["status"] == "answered" and unheld["held_by"] == "us"

    assert command(probe, tenant, "mute", call_id=call_id)["result"] == {"call_id": call_id, "muted": True}
    assert wait_type(probe, call_id, "call.muted")["data"]["muted"] is True
    assert command(probe, tenant, "mute", call_id=call_id, muted=False)["result"]["muted"] is False
    wait_type(probe, call_id, "call.unmuted")

    assert command(probe, tenant, "hangup", call_id=call_id)["result"] == {"call_id": call_id, "status": "answered"}
    events = probe.call_events_until_terminal(call_id)
    cdr = events[-1]["data"]
    assert events[-2]["type"] == "call.completed"
    assert cdr["hangup_cause"] == "NORMAL_CLEARING" and cdr["hangup_cause_q850"] == 16
    assert cdr["sip_hangup_disposition"] == "send_bye" and cdr["answer_stamp"] and cdr["billsec"] >= 0
    # FreeSWITCH swaps caller and callee ID on an answered outbound leg; the CDR keeps ours.
    assert cdr["caller_id_number"] == "+15550001111" and cdr["caller_id_name"] == "Front Desk"
    assert cdr["destination_number"] == number
    assert cdr["read_codec"] == "PCMU" and cdr["rtp_audio_in_mos"] is not None


def test_every_event_of_an_answered_call_once_and_in_order(
    fs_worker: Worker, probe: Probe, tenant: str, switch_events: EslClient,
) -> None:
    number = "+15551230002"
    call_id = originate(probe, tenant, number)
    far_leg(switch_events, number)
    switch_events.event(lambda e: e.name == "CHANNEL_ANSWER" and e.get("Unique-ID") == call_id)
    command(probe, tenant, "hangup", call_id=call_id)
    events = probe.call_events_until_terminal(call_id)
    assert [e["type"] for e in events] == ["call.initiated", "call.answered", "call.completed", "call.cdr"]
    assert_well_formed(events, tenant, fs_worker.settings.node_id)
    assert events[2]["data"]["hangup_cause"] == "NORMAL_CLEARING"


def test_far_end_hold_is_told_apart_from_ours(
    fs_worker: Worker, probe: Probe, tenant: str, real_switch, switch_events: EslClient,
) -> None:
    number = "+15551230003"
    call_id = originate(probe, tenant, number)
    far = far_leg(switch_events, number)
    wait_type(probe, call_id, "call.answered")

    assert real_switch.api(f"uuid_hold {far}").startswith("+OK")  # the remote party holds
    held = wait_type(probe, call_id, "call.held")["data"]
    assert held["held_by"] == "far_end" and held["status"] == "on_hold"
    assert real_switch.api(f"uuid_hold off {far}").startswith("+OK")
    unheld = wait_type(probe, call_id, "call.unheld")["data"]
    assert unheld["held_by"] == "far_end" and unheld["status"] == "answered"


def test_ring_timeout_holds_with_early_media(fs_worker: Worker, probe: Probe, tenant: str) -> None:
    """0183 sends 183 with SDP and a tone, and never answers: timeout_s must still end it."""
    started = time.monotonic()
    call_id = originate(probe, tenant, "+15551230183", timeout_s=5)
    events = probe.call_events_until_terminal(call_id, timeout=15)
    took = time.monotonic() - started
    assert [e["type"] for e in events] == ["call.initiated", "call.ringing", "call.failed", "call.cdr"]
    assert events[2]["data"]["hangup_cause"] == "NO_ANSWER"
    assert events[3]["data"]["answer_stamp"] is None and events[3]["data"]["billsec"] == 0
    assert 4.0 <= took <= 8.0, took


@pytest.mark.parametrize(("command_type", "fields"), [("mute", {}), ("hold", {})])
def test_mute_and_hold_need_an_answered_call(
    fs_worker: Worker, probe: Probe, tenant: str, switch_events: EslClient,
    command_type: str, fields: dict,
) -> None:
    """On the real switch uuid_audio on an unanswered channel pre-answers it (a false 183)."""
    number = "+15551230408"  # rings until cancelled
    call_id = originate(probe, tenant, number, timeout_s=10)
    far_leg(switch_events, number, "CHANNEL_CREATE")
    wait_type(probe, call_id, "call.ringing")

    reply = command(probe, tenant, command_type, call_id=call_id, **fields)
    assert reply["ok"] is False and reply["error"]["code"] == "CALL_NOT_ACTIVE"
    assert reply["error"]["details"]["status"] == "ringing"

    command(probe, tenant, "hangup", call_id=call_id)
    events = probe.call_events_until_terminal(call_id)
    assert [e["type"] for e in events][-2:] == ["call.cancelled", "call.cdr"]
    # Our leg never saw media before answer: nothing pre-answered it.
    media = [e for e in _drain(switch_events) if e.name == "CHANNEL_PROGRESS_MEDIA"
             and e.get("Unique-ID") == call_id]
    assert media == []


def _drain(client: EslClient) -> list:
    found = []
    while not client.events.empty():
        found.append(client.events.get_nowait())
    return found
