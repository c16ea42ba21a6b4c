"""Media on the real switch: a tone and a sound played to the far end, a recording written by
FreeSWITCH with audio in it, DTMF both ways, and none of it on a call not yet answered.

Outbound calls, and one a carrier places into the shipped dialplan (handed over on the
socket). The worker is configured with the switch's own sounds and recordings directories
(the same machine), so it reads recording sizes from the files.
"""

from __future__ import annotations

import array
import math
import uuid
import wave
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from callworker.app import Worker
from callworker.bus.probe import Probe
from tests.freeswitch.conftest import hang_up_everything, start_worker, switch_settings
from tests.freeswitch.realswitch import EslClient, RealSwitch
from tests.freeswitch.steps import assert_well_formed, command, originate, wait_type
from tests.freeswitch.test_answered_call import far_leg
from tests.freeswitch.test_inbound import call_in

pytestmark = pytest.mark.freeswitch


@pytest.fixture
def media_worker(real_switch: RealSwitch, pg_url: str, amqp_url: str) -> Iterator[Worker]:
    settings = switch_settings(real_switch, pg_url, amqp_url, sounds_dir=str(real_switch.sounds),
                               recordings_dir=str(real_switch.recordings))
    worker = start_worker(settings)
    yield worker
    hang_up_everything(real_switch)
    worker.stop()


def _write_sound(path: Path, seconds: float = 0.4, hz: int = 660) -> None:
    samples = array.array("h", (int(8000 * math.sin(2 * math.pi * hz * i / 8000)) for i in range(int(8000 * seconds))))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(samples.tobytes())


def _rms(path: Path) -> tuple[float, float]:
    """(seconds, RMS of the 16-bit samples) of a WAV file."""
    with wave.open(str(path), "rb") as wav:
        assert wav.getsampwidth() == 2
        frames = wav.readframes(wav.getnframes())
        seconds = wav.getnframes() / wav.getframerate()
    samples = array.array("h", frames)
    return seconds, math.sqrt(sum(s * s for s in samples) / max(1, len(samples)))


def test_a_tone_and_a_sound_play_to_the_far_end_with_both_events(
    media_worker: Worker, probe: Probe, tenant: str, real_switch: RealSwitch, switch_events: EslClient,
) -> None:
    _write_sound(real_switch.sounds / "greeting.wav")
    call_id = originate(probe, tenant, "+15551230301")
    wait_type(probe, call_id, "call.answered")

    reply = command(probe, tenant, "play", call_id=call_id, tone="200,100,440", loops=3)
    assert reply["ok"], reply
    playback_id = reply["result"]["playback_id"]
    assert reply["result"] == {"call_id": call_id, "playback_id": playback_id}
    started = wait_type(probe, call_id, "call.playback_started")
    finished = wait_type(probe, call_id, "call.playback_finished")
    assert started["data"]["playback_id"] == finished["data"]["playback_id"] == playback_id
    # What the switch said: the playback's parameters as headers of both events.
    for name in ("PLAYBACK_START", "PLAYBACK_STOP"):
        event = switch_events.event(lambda e, n=name: e.name == n and e.get("Unique-ID") == call_id)
        assert event.get("callworker_playback_id") == playback_id
        assert event.get("Playback-File-Path") == (
            f"{{callworker_playback_id={playback_id}}}tone_stream://%(200,100,440);loops=3")
        assert event.get("Playback-Status") == (None if name == "PLAYBACK_START" else "done")
    # Three cycles of 300 ms, timed by FreeSWITCH's own event clock.
    took = _seconds(started["occurred_at"], finished["occurred_at"])
    assert 0.8 <= took <= 1.6, took

    reply = command(probe, tenant, "play", call_id=call_id, sound="greeting.wav", loops=2)
    assert reply["ok"], reply
    started = wait_type(probe, call_id, "call.playback_started")
    finished = wait_type(probe, call_id, "call.playback_finished")
    assert started["data"]["playback_id"] == finished["data"]["playback_id"] == reply["result"]["playback_id"]
    assert 0.6 <= _seconds(started["occurred_at"], finished["occurred_at"]) <= 1.4

    command(probe, tenant, "hangup", call_id=call_id)
    probe.call_events_until_terminal(call_id)


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def test_a_recording_is_a_real_wav_with_the_audio_in_it(
    media_worker: Worker, probe: Probe, tenant: str, real_switch: RealSwitch,
) -> None:
    call_id = originate(probe, tenant, "+15551230302")
    wait_type(probe, call_id, "call.answered")
    reply = command(probe, tenant, "record", call_id=call_id, action="start")
    assert reply["ok"], reply
    recording_id = reply["result"]["recording_id"]
    started = wait_type(probe, call_id, "call.recording_started")["data"]
    path = real_switch.recordings / tenant / call_id / f"{recording_id}.wav"
    assert started["recording_id"] == recording_id and started["path"] == str(path)

    # A second start while it runs starts nothing: the same recording.
    again = command(probe, tenant, "record", call_id=call_id, action="start")
    assert again["result"]["recording_id"] == recording_id

    # About 1.5 s of our tone into the recording.
    assert command(probe, tenant, "play", call_id=call_id, tone="500,0,440", loops=3)["ok"]
    wait_type(probe, call_id, "call.playback_finished")
    stop = command(probe, tenant, "record", call_id=call_id, action="stop")
    assert stop["result"] == {"call_id": call_id, "recording_id": recording_id}
    stopped = wait_type(probe, call_id, "call.recording_stopped")["data"]

    assert stopped["recording_id"] == recording_id and stopped["path"] == str(path)
    seconds, rms = _rms(path)
    assert 1.3 <= seconds <= 4.0, seconds
    assert abs(stopped["duration_ms"] - seconds * 1000) <= 100, (stopped["duration_ms"], seconds)
    assert stopped["size_bytes"] == path.stat().st_size
    assert rms > 500, rms  # a tone, not silence

    command(probe, tenant, "hangup", call_id=call_id)
    events = probe.call_events_until_terminal(call_id)
    assert events[-1]["data"]["recordings"] == [recording_id]


def test_a_recording_running_at_hangup_is_stopped_and_reported_once(
    media_worker: Worker, probe: Probe, tenant: str, real_switch: RealSwitch, switch_events: EslClient,
) -> None:
    call_id = originate(probe, tenant, "+15551230303")
    answered = wait_type(probe, call_id, "call.answered")
    recording_id = command(probe, tenant, "record", call_id=call_id, action="start")["result"]["recording_id"]
    started = wait_type(probe, call_id, "call.recording_started")
    playing = command(probe, tenant, "play", call_id=call_id, tone="1500,0,440")["result"]["playback_id"]
    play_events = [wait_type(probe, call_id, "call.playback_started"), wait_type(probe, call_id,
                                                                             "call.playback_finished")]
    assert {e["data"]["playback_id"] for e in play_events} == {playing}
    real_switch.api(f"uuid_kill {call_id}")
    # FreeSWITCH closes the recording as the channel hangs up: RECORD_STOP comes before
    # CHANNEL_HANGUP_COMPLETE, with the samples written.
    names = [switch_events.event(lambda e: e.get("Unique-ID") == call_id and e.name in (
        "RECORD_STOP", "CHANNEL_HANGUP_COMPLETE")).name for _ in range(2)]
    assert names == ["RECORD_STOP", "CHANNEL_HANGUP_COMPLETE"]
    events = [answered, started, *play_events, *probe.call_events_until_terminal(call_id)]
    events.sort(key=lambda e: e["seq"])
    types = [e["type"] for e in events]
    assert types == ["call.initiated", "call.answered", "call.recording_started", "call.playback_started",
                     "call.playback_finished", "call.recording_stopped", "call.completed", "call.cdr"], types
    stopped = events[5]["data"]
    path = real_switch.recordings / tenant / call_id / f"{recording_id}.wav"
    assert stopped["recording_id"] == recording_id and stopped["size_bytes"] == path.stat().st_size
    seconds, rms = _rms(path)
    assert abs(stopped["duration_ms"] - seconds * 1000) <= 40 and seconds >= 1.0 and rms > 500
    assert events[-1]["data"]["recordings"] == [recording_id]
    assert_well_formed(events, tenant, media_worker.settings.node_id)


def test_dtmf_from_the_far_end_arrives_in_order(media_worker: Worker, probe: Probe, tenant: str) -> None:
    call_id = originate(probe, tenant, "+15551230270")  # answers, then keys in 123#
    digits = [wait_type(probe, call_id, "call.dtmf")["data"] for _ in range(4)]
    assert [d["digit"] for d in digits] == ["1", "2", "3", "#"]
    assert all(40 <= d["duration_ms"] <= 2000 for d in digits), digits
    command(probe, tenant, "hangup", call_id=call_id)
    probe.call_events_until_terminal(call_id)


def test_dtmf_the_worker_sends_reaches_the_far_end_and_the_far_ends_reaches_us(
    media_worker: Worker, probe: Probe, tenant: str, switch_events: EslClient, real_switch: RealSwitch,
) -> None:
    number = "+15551230304"
    call_id = originate(probe, tenant, number)
    far = far_leg(switch_events, number)
    wait_type(probe, call_id, "call.answered")
    assert command(probe, tenant, "dtmf", call_id=call_id, digits="4*9#")["result"] == {"call_id": call_id}
    heard = [switch_events.event(lambda e: e.name == "DTMF" and e.get("Unique-ID") == far).get("DTMF-Digit")
             for _ in range(4)]
    assert heard == ["4", "*", "9", "#"]
    # The far end keys in digits in its turn (uuid_send_dtmf on the carrier's leg).
    assert real_switch.api(f"uuid_send_dtmf {far} 7D").startswith("+OK")
    keyed = [wait_type(probe, call_id, "call.dtmf")["data"]["digit"] for _ in range(2)]
    assert keyed == ["7", "D"]
    command(probe, tenant, "hangup", call_id=call_id)
    events = probe.call_events_until_terminal(call_id)
    assert "call.dtmf" not in [e["type"] for e in events]  # nothing more: what we sent is not the far end's


@pytest.mark.parametrize(("command_type", "fields"), [
    ("play", {"tone": "100,100,440"}), ("dtmf", {"digits": "1"}), ("record", {"action": "start"}),
])
def test_media_needs_an_answered_call(
    media_worker: Worker, probe: Probe, tenant: str, switch_events: EslClient, command_type: str, fields: dict,
) -> None:
    number = "+15551230408"  # rings until cancelled
    call_id = originate(probe, tenant, number, timeout_s=10)
    far_leg(switch_events, number, "CHANNEL_CREATE")
    wait_type(probe, call_id, "call.ringing")
    reply = command(probe, tenant, command_type, call_id=call_id, **fields)
    assert reply["ok"] is False and reply["error"]["code"] == "CALL_NOT_ACTIVE"
    command(probe, tenant, "hangup", call_id=call_id)
    events = probe.call_events_until_terminal(call_id)
    assert [e["type"] for e in events][-2:] == ["call.cancelled", "call.cdr"]


def test_unknown_call_is_not_found(media_worker: Worker, probe: Probe, tenant: str) -> None:
    reply = command(probe, tenant, "play", call_id=str(uuid.uuid4()), tone="100,100,440")
    assert reply["error"]["code"] == "CALL_NOT_FOUND"


def test_media_on_a_call_handed_over_by_the_dialplan(
    media_worker: Worker, amqp_url: str, real_switch: RealSwitch, switch_events: EslClient,
) -> None:
    """A carrier call the shipped dialplan hands to the worker's socket: played to, recorded, DTMF."""
    caller = f"+1666{uuid.uuid4().int % 10**7:07d}"
    probe = Probe(amqp_url, event_bindings=("acme.#",))
    try:
        far = call_in(real_switch, "+15552000001", caller)
        initiated = probe.event(lambda e: e["type"] == "call.initiated" and e["data"]["caller_id_number"] == caller,
                                15)
        call_id = initiated["call_id"]
        wait_type(probe, call_id, "call.answered")
        recording_id = command(probe, "acme", "record", call_id=call_id, action="start")["result"]["recording_id"]
        wait_type(probe, call_id, "call.recording_started")
        reply = command(probe, "acme", "play", call_id=call_id, tone="300,0,440", loops=2)
        assert reply["ok"], reply
        assert wait_type(probe, call_id, "call.playback_started")["data"]["playback_id"] == \
            reply["result"]["playback_id"]
        wait_type(probe, call_id, "call.playback_finished")
        assert real_switch.api(f"uuid_send_dtmf {far} 5").startswith("+OK")  # the caller keys in 5
        assert wait_type(probe, call_id, "call.dtmf")["data"]["digit"] == "5"
        command(probe, "acme", "hangup", call_id=call_id)
        events = probe.call_events_until_terminal(call_id)
        assert [e["type"] for e in events][-3:] == ["call.recording_stopped", "call.completed", "call.cdr"]
        assert events[-1]["data"]["recordings"] == [recording_id]
        _seconds_recorded, rms = _rms(real_switch.recordings / "acme" / call_id / f"{recording_id}.wav")
        assert rms > 500, rms
    finally:
        probe.close()
