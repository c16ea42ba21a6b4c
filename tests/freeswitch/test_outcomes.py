"""Every CONTRACT section 7 outcome on the real switch: status, cause, q850 and the CDR
FreeSWITCH itself reports in CHANNEL_HANGUP_COMPLETE."""

from __future__ import annotations

import pytest

from callworker.app import Worker
from callworker.bus.probe import Probe
from tests.freeswitch.steps import assert_well_formed, originate

pytestmark = pytest.mark.freeswitch


@pytest.mark.parametrize(
    ("number", "types", "cause", "q850", "disposition"),
    [
        ("+15551230486", ["call.initiated", "call.ringing", "call.failed", "call.cdr"], "USER_BUSY", 17, None),
        ("+15551230403", ["call.initiated", "call.failed", "call.cdr"], "CALL_REJECTED", 21, None),
        ("+15551230404", ["call.initiated", "call.failed", "call.cdr"], "UNALLOCATED_NUMBER", 1, None),
        ("+15551230408", ["call.initiated", "call.ringing", "call.failed", "call.cdr"], "NO_ANSWER", 19, None),
        ("+15551230180", ["call.initiated", "call.ringing", "call.failed", "call.cdr"], "NO_ANSWER", 19, None),
        ("+15551230200", ["call.initiated", "call.answered", "call.completed", "call.cdr"], "NORMAL_CLEARING", 16,
         "recv_bye"),
    ],
)
def test_outcome(
    fs_worker: Worker, probe: Probe, tenant: str,
    number: str, types: list[str], cause: str, q850: int, disposition: str | None,
) -> None:
    call_id = originate(probe, tenant, number, timeout_s=5)
    events = probe.call_events_until_terminal(call_id, timeout=20)
    assert [e["type"] for e in events] == types
    assert_well_formed(events, tenant, fs_worker.settings.node_id)
    terminal, cdr = events[-2]["data"], events[-1]["data"]
    assert terminal["hangup_cause"] == cause
    assert cdr["hangup_cause"] == cause and cdr["hangup_cause_q850"] == q850
    assert cdr["call_id"] == call_id and cdr["destination_number"] == number
    assert cdr["start_stamp"] and cdr["end_stamp"]
    # Placed without a caller ID: the CDR never names the far end as the caller (FreeSWITCH
    # swaps the two on answer and sends no name of ours).
    assert cdr["caller_id_name"] is None and cdr["caller_id_number"] != number
    if disposition:
        assert cdr["sip_hangup_disposition"] == disposition
