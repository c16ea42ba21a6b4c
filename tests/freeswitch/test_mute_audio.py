"""Mute, proven by audio on the real switch: on a bridged call, the muted call's far end is
not heard by the other call.

Click-to-call from a far end that plays a steady 440 Hz tone (carrier number ...0440) to
one that stays up. What the second call sends to its far end (``RECORD_WRITE_ONLY``: the
audio bridged over from the first call) is recorded while the first is unmuted, muted,
and unmuted again, and its energy measured: the tone, silence, the tone.
"""

from __future__ import annotations

import array
import math
import uuid
import wave
from pathlib import Path

import gevent.event
import pytest

from callworker.app import Worker
from callworker.bus.probe import Probe
from tests.freeswitch.realswitch import EslClient, RealSwitch
from tests.freeswitch.steps import command, wait_type

pytestmark = pytest.mark.freeswitch

WINDOW_S = 1.5
SKIP_S = 0.3  # the start of a recording, while the mute or unmute settles


def rms(path: Path) -> float:
    """The root mean square of a 16-bit mono WAV after its first SKIP_S."""
    with wave.open(str(path), "rb") as wav:
        assert wav.getsampwidth() == 2 and wav.getnchannels() == 1
        frames = wav.readframes(wav.getnframes())
        rate = wav.getframerate()
    samples = array.array("h")
    samples.frombytes(frames)
    samples = samples[int(rate * SKIP_S):]
    assert len(samples) > rate // 2, f"{path.name}: only {len(samples)} samples"
    return math.sqrt(sum(s * s for s in samples) / len(samples))


def record_window(switch: RealSwitch, events: EslClient, call_id: str, path: Path) -> float:
    """What ``call_id`` sends to its far end for WINDOW_S, as RMS energy."""
    assert switch.api(f"uuid_record {call_id} start {path}").startswith("+OK")
    gevent.event.Event().wait(WINDOW_S)  # the window measured, not a synchronisation
    assert switch.api(f"uuid_record {call_id} stop {path}").startswith("+OK")
    events.event(lambda e: e.name == "RECORD_STOP" and e.get("Unique-ID") == call_id
                 and e.get("Record-File-Path") == str(path))
    return rms(path)


def test_the_muted_calls_far_end_is_not_heard_by_the_call_it_is_bridged_to(
    fs_worker: Worker, probe: Probe, tenant: str, real_switch: RealSwitch, switch_events: EslClient,
) -> None:
    first = str(uuid.uuid4())
    reply = command(probe, tenant, "originate", destination_number="+15552350440", call_id=first,
                    connect={"to": "number", "destination_number": "+15552350001"})
    second = reply["result"]["connect_call_id"]
    wait_type(probe, first, "call.bridged")
    wait_type(probe, second, "call.bridged")
    assert real_switch.api(f"uuid_setvar {second} RECORD_WRITE_ONLY true").startswith("+OK")
    folder = real_switch.recordings / tenant
    folder.mkdir(parents=True, exist_ok=True)

    heard = record_window(real_switch, switch_events, second, folder / "unmuted.wav")
    assert command(probe, tenant, "mute", call_id=first)["result"]["muted"] is True
    wait_type(probe, first, "call.muted")
    muted = record_window(real_switch, switch_events, second, folder / "muted.wav")
    command(probe, tenant, "mute", call_id=first, muted=False)
    wait_type(probe, first, "call.unmuted")
    heard_again = record_window(real_switch, switch_events, second, folder / "unmuted-again.wav")

    # The tone is loud (thousands); what a muted leg lets through is at most comfort noise.
    assert heard > 500 and heard_again > 500, (heard, heard_again)
    assert muted < heard / 20, (muted, heard)

    command(probe, tenant, "hangup", call_id=first)
    probe.call_events_until_terminal(first)
    probe.call_events_until_terminal(second)
