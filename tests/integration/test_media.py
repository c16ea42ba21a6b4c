"""play, dtmf and record end to end against the simulator: replies, events in seq order,
recordings written under the recordings directory and listed in the CDR, idempotency, and
what may not be done to a call that is not answered."""

from __future__ import annotations

import json
import uuid
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from callworker.app import Worker
from callworker.bus.probe import Probe, Received
from callworker.simulator import Simulator
from tests.integration.conftest import make_settings, start_worker

pytestmark = pytest.mark.integration


@pytest.fixture
def recordings(tmp_path: Path) -> Path:
    return tmp_path / "recordings"


@pytest.fixture
def media_worker(
    simulator: Simulator, pg_url: str, amqp_url: str, recordings: Path, tmp_path: Path,
) -> Iterator[Worker]:
    sounds = tmp_path / "sounds"
    sounds.mkdir()
    with wave.open(str(sounds / "hello.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\0\0" * 1600)  # 0.2 s
    w = start_worker(make_settings(simulator, pg_url, amqp_url, sounds_dir=str(sounds),
                                   recordings_dir=str(recordings)))
    yield w
    w.stop()


def ask(probe: Probe, tenant: str, command_type: str, **fields: Any) -> Received:
    return probe.reply_for(probe.send(tenant, command_type, **fields)["command_id"])


def answered_call(probe: Probe, tenant: str, number: str = "+15551230001") -> str:
    call_id = str(uuid.uuid4())
    assert ask(probe, tenant, "originate", destination_number=number, call_id=call_id)["ok"]
    probe.event(lambda e: e.get("call_id") == call_id and e["type"] == "call.answered")
    return call_id


def next_event(probe: Probe, call_id: str, event_type: str) -> Received:
    return probe.event(lambda e: e.get("call_id") == call_id and e["type"] == event_type)


def test_play_a_tone_and_a_sound(media_worker: Worker, probe: Probe, tenant: str, simulator: Simulator) -> None:
    call_id = answered_call(probe, tenant)
    reply = ask(probe, tenant, "play", call_id=call_id, tone="100,50,440", loops=2)
    playback_id = reply["result"]["playback_id"]
    assert reply["result"] == {"call_id": call_id, "playback_id": playback_id}
    started = next_event(probe, call_id, "call.playback_started")
    finished = next_event(probe, call_id, "call.playback_finished")
    assert started["data"]["playback_id"] == finished["data"]["playback_id"] == playback_id
    assert started["data"]["status"] == "answered"  # the call's snapshot, as every call event
    assert finished["seq"] == started["seq"] + 1
    assert (f"api uuid_broadcast {call_id} {{callworker_playback_id={playback_id}}}"
            "tone_stream://%(100,50,440);loops=2 aleg") in simulator.received_commands()

    reply = ask(probe, tenant, "play", call_id=call_id, sound="hello.wav")
    assert next_event(probe, call_id, "call.playback_finished")["data"]["playback_id"] == \
        reply["result"]["playback_id"]
    missing = ask(probe, tenant, "play", call_id=call_id, sound="nothing.wav")
    assert missing["error"]["code"] == "VALIDATION_ERROR" and missing["error"]["details"]["field"] == "sound"
    ask(probe, tenant, "hangup", call_id=call_id)
    probe.call_events_until_terminal(call_id)


def test_dtmf_both_ways(media_worker: Worker, probe: Probe, tenant: str, simulator: Simulator) -> None:
    call_id = answered_call(probe, tenant, "+15551230270")  # the far end keys in 123#
    digits = [next_event(probe, call_id, "call.dtmf")["data"] for _ in range(4)]
    assert [(d["digit"], d["duration_ms"]) for d in digits] == [("1", 260), ("2", 260), ("3", 260), ("#", 260)]
    assert ask(probe, tenant, "dtmf", call_id=call_id, digits="*0A#")["result"] == {"call_id": call_id}
    assert simulator.sent_dtmf(call_id) == "*0A#"
    ask(probe, tenant, "hangup", call_id=call_id)
    probe.call_events_until_terminal(call_id)


def test_record_start_stop_writes_a_wav_and_the_cdr_lists_it(
    media_worker: Worker, probe: Probe, tenant: str, simulator: Simulator, recordings: Path, pg_url: str,
) -> None:
    call_id = answered_call(probe, tenant)
    body = probe.send(tenant, "record", call_id=call_id, action="start")
    first = probe.reply_for(body["command_id"])
    recording_id = first["result"]["recording_id"]
    path = recordings / tenant / call_id / f"{recording_id}.wav"
    started = next_event(probe, call_id, "call.recording_started")["data"]
    assert started["recording_id"] == recording_id and started["path"] == str(path)

    # The same command again: its first reply, and no second recording.
    probe.publish_raw(f"{tenant}.record", json.dumps(body).encode())
    assert probe.reply_for(body["command_id"])["result"] == first["result"]
    assert sum(line.startswith(f"api uuid_record {call_id} start") for line in simulator.received_commands()) == 1

    assert ask(probe, tenant, "play", call_id=call_id, tone="200,0,440")["ok"]
    next_event(probe, call_id, "call.playback_finished")
    stop = ask(probe, tenant, "record", call_id=call_id, action="stop")
    assert stop["result"] == {"call_id": call_id, "recording_id": recording_id}
    stopped = next_event(probe, call_id, "call.recording_stopped")["data"]
    assert stopped["size_bytes"] == path.stat().st_size
    with wave.open(str(path), "rb") as wav:
        assert abs(stopped["duration_ms"] - 1000 * wav.getnframes() / wav.getframerate()) <= 1
    assert stopped["duration_ms"] >= 150
    none_left = ask(probe, tenant, "record", call_id=call_id, action="stop")
    assert none_left["error"]["code"] == "CALL_NOT_ACTIVE"

    ask(probe, tenant, "hangup", call_id=call_id)
    cdr = probe.call_events_until_terminal(call_id)[-1]["data"]
    assert cdr["recordings"] == [recording_id]
    listed = ask(probe, tenant, "cdr.list")["result"]["cdrs"]
    assert [c["recordings"] for c in listed if c["call_id"] == call_id] == [[recording_id]]
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT status, size_bytes FROM recordings WHERE call_id = :c"),
                           {"c": call_id}).one()
    engine.dispose()
    assert tuple(row) == ("stopped", stopped["size_bytes"])


def test_a_recording_running_at_hangup_is_reported_once_before_the_end(
    media_worker: Worker, probe: Probe, tenant: str, simulator: Simulator,
) -> None:
    call_id = answered_call(probe, tenant)
    recording_id = ask(probe, tenant, "record", call_id=call_id, action="start")["result"]["recording_id"]
    next_event(probe, call_id, "call.recording_started")
    simulator.hangup(call_id)
    events = probe.call_events_until_terminal(call_id)
    types = [e["type"] for e in events]
    assert types[-3:] == ["call.recording_stopped", "call.completed", "call.cdr"], types
    assert types.count("call.recording_stopped") == 1
    assert events[-1]["data"]["recordings"] == [recording_id]


@pytest.mark.parametrize(("command_type", "fields"), [
    ("play", {"tone": "100,100,440"}), ("dtmf", {"digits": "1"}), ("record", {"action": "start"}),
])
def test_media_needs_an_answered_call(
    media_worker: Worker, probe: Probe, tenant: str, simulator: Simulator, command_type: str, fields: dict,
) -> None:
    call_id = str(uuid.uuid4())
    assert ask(probe, tenant, "originate", destination_number="+15551230408", call_id=call_id)["ok"]
    next_event(probe, call_id, "call.ringing")
    reply = ask(probe, tenant, command_type, call_id=call_id, **fields)
    assert reply["error"]["code"] == "CALL_NOT_ACTIVE" and reply["error"]["details"]["status"] == "ringing"
    assert not any(line.startswith(("api uuid_broadcast", "api uuid_send_dtmf", "api uuid_record"))
                   and call_id in line for line in simulator.received_commands())
    ask(probe, tenant, "hangup", call_id=call_id)
    probe.call_events_until_terminal(call_id)
