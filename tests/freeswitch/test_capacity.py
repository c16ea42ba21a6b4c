"""The shipped core limits on the real switch: what it loaded, and a burst of originates.

FreeSWITCH creates at most ``sessions-per-second`` sessions a second (each leg of a call
is one; here both the worker's leg and the fake carrier's count); above that an originate
fails at once with DESTINATION_OUT_OF_ORDER. The shipped limit must let the worker's
bursts through. The RTP range is given by the test through FS_RTP_* (the defaults are
checked in tests/unit/test_freeswitch_conf.py); the calls' media must use it.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

from callworker.app import Worker
from callworker.bus.probe import Probe
from tests.freeswitch.realswitch import EslClient, RealSwitch
from tests.unit.test_freeswitch_conf import assemble, configuration, params

pytestmark = pytest.mark.freeswitch

BURST = 60  # calls, each two sessions here: far above FreeSWITCH's usual 30 sessions a second


def shipped_core_settings() -> dict[str, str]:
    """switch.conf as the shipped vars.xml sets it (the real tier does not override these)."""
    return params(configuration(assemble().document, "switch.conf").find("settings"))


def test_the_switch_runs_with_the_shipped_session_limits(real_switch: RealSwitch) -> None:
    status = real_switch.api("status")
    shipped = shipped_core_settings()
    per_second = re.search(r"session\(s\) per Sec out of max (\d+)", status)
    at_once = re.search(r"^(\d+) session\(s\) max", status, re.MULTILINE)
    assert per_second and at_once, status
    assert per_second[1] == shipped["sessions-per-second"] and at_once[1] == shipped["max-sessions"]
    assert real_switch.api("global_getvar sessions_per_second").strip() == shipped["sessions-per-second"]
    ports = real_switch.ports
    assert real_switch.api("global_getvar rtp_start_port").strip() == str(ports.rtp_start)
    assert real_switch.api("global_getvar rtp_end_port").strip() == str(ports.rtp_end)


def test_a_burst_of_originates_is_placed_whole_with_media_in_the_rtp_range(
    fs_worker: Worker, probe: Probe, tenant: str, real_switch: RealSwitch, switch_events: EslClient,
) -> None:
    # 0200: the carrier answers, then hangs up after 2 s; each call has its own number.
    numbers = [f"+1555124{i:03d}0200" for i in range(BURST)]
    sent = [probe.send(tenant, "originate", destination_number=number) for number in numbers]
    replies = [probe.reply_for(body["command_id"], timeout=20) for body in sent]
    assert all(reply["ok"] for reply in replies), [r["error"] for r in replies if not r["ok"]][:3]
    call_ids = [reply["result"]["call_id"] for reply in replies]

    terminal = {}
    for call_id in call_ids:
        events = probe.call_events_until_terminal(call_id, timeout=30)
        terminal[call_id] = (events[-2]["type"], events[-2]["data"]["hangup_cause"])
    assert Counter(terminal.values()) == Counter({("call.completed", "NORMAL_CLEARING"): BURST})

    created, media_ports = [], []
    ours, carrier_numbers = set(call_ids), set(numbers)
    while not switch_events.events.empty():
        event = switch_events.events.get_nowait()
        leg = event.get("Unique-ID") in ours or (
            (event.get("Channel-Name") or "").startswith("sofia/carrier/")
            and event.get("Caller-Destination-Number") in carrier_numbers)
        if leg and event.name == "CHANNEL_CREATE":
            created.append(int(event["Event-Date-Timestamp"]))
        elif leg and event.name == "CHANNEL_ANSWER":
            media_ports.append(int(event["variable_local_media_port"]))
    # The burst really went past the old limit of 30: sessions created in its busiest second.
    created.sort()
    busiest = max(sum(1 for t in created if start <= t < start + 1_000_000) for start in created)
    assert len(created) == 2 * BURST and busiest > 30, busiest
    ports = real_switch.ports
    assert len(media_ports) == 2 * BURST
    assert all(ports.rtp_start <= port <= ports.rtp_end and port % 2 == 0 for port in media_ports)
