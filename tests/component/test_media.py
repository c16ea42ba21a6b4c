"""Media commands and FreeSWITCH's media events with a fake FreeSWITCH port and SQLite:
each playback and recording reported once, in order, whatever FreeSWITCH repeats or says
late; a recording taken back after a restart; retention and privacy.export of recordings."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from gevent.queue import Queue
from sqlalchemy import Engine, func, select

from callworker.bus.relay import OutboxItem
from callworker.calls.fsevents import EventPump
from callworker.calls.journal import Journal
from callworker.calls.media import Media
from callworker.calls.media_events import MEDIA_EVENTS, MediaEvents
from callworker.calls.service import CallService, Delivered
from callworker.contract import decode_command, utcnow
from callworker.errors import FreeSwitchNotSent
from callworker.store import get_cdr, make_engine, migrate
from callworker.store.models import RECORDINGS
from callworker.store.privacy import Subject, export
from callworker.store.retention import Retention, sweep
from tests.component.test_call_service import FakePort, command, fs_event

TENANT = "acme"


@dataclass
class Rig:
    service: CallService
    media: Media
    journal: Journal
    pump: EventPump
    port: FakePort
    published: list[OutboxItem]
    engine: Engine
    recordings: Path

    def events(self, call_id: str) -> list[dict[str, Any]]:
        self.journal.run(lambda unit: None)
        bodies = [json.loads(item.body) for item in self.published if item.exchange == "callworker.events"]
        return [b for b in bodies if b.get("call_id") == call_id]

    def types(self, call_id: str) -> list[str]:
        return [e["type"] for e in self.events(call_id)]

    def run(self, command_type: str, **fields: Any) -> dict[str, Any]:
        handler = self.media.handlers()[command_type]
        body = {"v": 1, "command_id": str(uuid.uuid4()), "type": command_type, **fields}
        return handler(decode_command(f"{TENANT}.{command_type}", json.dumps(body).encode()), Delivered(None, None))

    def answered_call(self) -> str:
        reply = self.service.execute(command("originate", destination_number="+15551230001"), Delivered(None, None))
        call_id = str(reply["result"]["call_id"])
        self.pump.handle(fs_event("CHANNEL_ANSWER", call_id))
        self.journal.run(lambda unit: None)
        return call_id


def _rig(tmp_path: Path, url: str) -> tuple[Rig, Journal]:
    engine = make_engine(url)
    published: list[OutboxItem] = []
    journal = Journal(engine, node="fs1", notify=published.extend)
    port = FakePort()
    service = CallService(journal=journal, port=port, engine=engine, node="fs1", gateways=("default",),
                          default_gateway="default")
    recordings = tmp_path / "recordings"
    media = Media(journal=journal, service=service, engine=engine, node="fs1", sounds_dir=str(tmp_path / "none"),
                  recordings_dir=str(recordings))
    pump = EventPump(Queue(), journal)
    media_events = MediaEvents(journal, media.state)
    for name in MEDIA_EVENTS:
        pump.on(name, media_events.handle)
    journal.enders.append(media_events.on_end)
    journal.reloaders.append(media.load)
    journal.load()
    media.load()
    journal.start()
    return Rig(service, media, journal, pump, port, published, engine, recordings), journal


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    url = f"sqlite:///{tmp_path / 'calls.sqlite3'}"
    migrate(url)
    built, journal = _rig(tmp_path, url)
    yield built
    journal.stop()
    built.engine.dispose()


def _hangup(rig: Rig, call_id: str) -> None:
    rig.pump.handle(fs_event("CHANNEL_HANGUP_COMPLETE", call_id, **{"Hangup-Cause": "NORMAL_CLEARING"}))


def test_each_playback_is_started_and_finished_once(rig: Rig) -> None:
    call_id = rig.answered_call()
    playback_id = rig.run("play", call_id=call_id, tone="100,100,440")["result"]["playback_id"]
    ours = {"callworker_playback_id": playback_id}
    rig.pump.handle(fs_event("PLAYBACK_START", call_id, **ours))
    rig.pump.handle(fs_event("PLAYBACK_START", call_id, **ours))  # told twice
    rig.pump.handle(fs_event("PLAYBACK_START", call_id))  # the dialplan's own playback: not ours
    rig.pump.handle(fs_event("PLAYBACK_STOP", call_id, **ours, **{"Playback-Status": "done"}))
    rig.pump.handle(fs_event("PLAYBACK_STOP", call_id, **ours, **{"Playback-Status": "done"}))
    assert rig.types(call_id) == ["call.initiated", "call.answered", "call.playback_started",
                                  "call.playback_finished"]
    # One still playing when the call ends is finished before the terminal event.
    second = rig.run("play", call_id=call_id, tone="100,100,440", loops=100)["result"]["playback_id"]
    rig.pump.handle(fs_event("PLAYBACK_START", call_id, callworker_playback_id=second))
    _hangup(rig, call_id)
    rig.pump.handle(fs_event("PLAYBACK_STOP", call_id, callworker_playback_id=second))  # too late: told already
    events = rig.events(call_id)
    assert [e["type"] for e in events][-4:] == ["call.playback_started", "call.playback_finished",
                                                "call.completed", "call.cdr"]
    assert events[-3]["data"]["playback_id"] == second


def test_dtmf_digits_in_order_with_their_duration(rig: Rig) -> None:
    call_id = rig.answered_call()
    for digit in "1a#":
        rig.pump.handle(fs_event("DTMF", call_id, **{"DTMF-Digit": digit, "DTMF-Duration": "2000"}))
    rig.pump.handle(fs_event("DTMF", call_id, **{"DTMF-Digit": "x", "DTMF-Duration": "2000"}))  # not a DTMF digit
    digits = [(e["data"]["digit"], e["data"]["duration_ms"]) for e in rig.events(call_id) if e["type"] == "call.dtmf"]
    assert digits == [("1", 250), ("A", 250), ("#", 250)]
    assert rig.run("dtmf", call_id=call_id, digits="9#")["result"] == {"call_id": call_id}
    assert rig.port.sent[-1] == f"api uuid_send_dtmf {call_id} 9#"


def test_a_recording_running_at_hangup_is_reported_once_and_listed(rig: Rig) -> None:
    call_id = rig.answered_call()
    recording_id = rig.run("record", call_id=call_id, action="start")["result"]["recording_id"]
    path = str(rig.recordings / TENANT / call_id / f"{recording_id}.wav")
    assert rig.port.sent[-1] == f"api uuid_record {call_id} start {path}"
    rig.pump.handle(fs_event("RECORD_START", call_id, **{"Record-File-Path": path}))
    _hangup(rig, call_id)
    # FreeSWITCH's RECORD_STOP after the hangup finds the call gone: nothing more.
    rig.pump.handle(fs_event("RECORD_STOP", call_id, **{"Record-File-Path": path, "variable_record_ms": "900"}))
    events = rig.events(call_id)
    types = [e["type"] for e in events]
    assert types == ["call.initiated", "call.answered", "call.recording_started", "call.recording_stopped",
                     "call.completed", "call.cdr"]
    stopped = events[3]["data"]
    assert stopped["recording_id"] == recording_id and stopped["path"] == path
    assert stopped["size_bytes"] == 44 + 16 * stopped["duration_ms"]  # no file here: the WAV's size for its length
    assert events[-1]["data"]["recordings"] == [recording_id]
    cdr = get_cdr(rig.engine, TENANT, call_id)
    assert cdr is not None and cdr["recordings"] == [recording_id]


def test_record_stop_reads_freeswitchs_figures_and_the_file(rig: Rig) -> None:
    call_id = rig.answered_call()
    recording_id = rig.run("record", call_id=call_id, action="start")["result"]["recording_id"]
    path = rig.recordings / TENANT / call_id / f"{recording_id}.wav"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"RIFF" + b"\0" * 1000)
    assert rig.run("record", call_id=call_id, action="stop")["result"]["recording_id"] == recording_id
    rig.pump.handle(fs_event("RECORD_STOP", call_id, **{"Record-File-Path": str(path), "variable_record_ms": "1234",
                                                        "variable_record_samples": "9872"}))
    events = rig.events(call_id)
    # Its start went unheard: told in its place, before the stop.
    assert [e["type"] for e in events][-2:] == ["call.recording_started", "call.recording_stopped"]
    assert events[-1]["data"]["duration_ms"] == 1234 and events[-1]["data"]["size_bytes"] == 1004
    refused = rig.run("record", call_id=call_id, action="stop")
    assert refused["error"]["code"] == "CALL_NOT_ACTIVE"


def test_a_recording_is_taken_back_after_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'calls.sqlite3'}"
    migrate(url)
    first, journal = _rig(tmp_path, url)
    call_id = first.answered_call()
    recording_id = first.run("record", call_id=call_id, action="start")["result"]["recording_id"]
    path = str(first.recordings / TENANT / call_id / f"{recording_id}.wav")
    first.pump.handle(fs_event("RECORD_START", call_id, **{"Record-File-Path": path}))
    first.events(call_id)
    journal.stop()
    first.engine.dispose()

    second, journal = _rig(tmp_path, url)
    try:
        again = second.run("record", call_id=call_id, action="start")  # one runs already: that one
        assert again["result"]["recording_id"] == recording_id
        assert not any("uuid_record" in line for line in second.port.sent)
        second.pump.handle(fs_event("RECORD_STOP", call_id, **{"Record-File-Path": path, "variable_record_ms": "5"}))
        _hangup(second, call_id)
        events = second.events(call_id)
        assert [e["type"] for e in events] == ["call.recording_stopped", "call.completed", "call.cdr"]
        assert events[-1]["data"]["recordings"] == [recording_id]
    finally:
        journal.stop()
        second.engine.dispose()


def test_retention_and_privacy_export_take_the_recordings_with_their_calls(rig: Rig) -> None:
    call_id = rig.answered_call()
    recording_id = rig.run("record", call_id=call_id, action="start")["result"]["recording_id"]
    _hangup(rig, call_id)
    rig.events(call_id)
    found = export(rig.engine, Subject.of(b"k" * 32, TENANT, phone_number="+15551230001"))
    assert [(r["recording_id"], r["status"]) for r in found["recordings"]] == [(recording_id, "stopped")]
    assert export(rig.engine, Subject.of(b"k" * 32, "globex", phone_number="+15551230001"))["recordings"] == []

    sweep(rig.engine, Retention(days=1), now=utcnow() + timedelta(days=2))
    with rig.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(RECORDINGS)).scalar_one() == 0


def test_a_record_start_that_never_reached_freeswitch_is_sent_when_it_comes_back(rig: Rig) -> None:
    call_id = rig.answered_call()
    body = {"v": 1, "command_id": str(uuid.uuid4()), "type": "record", "call_id": call_id, "action": "start"}
    cmd = decode_command(f"{TENANT}.record", json.dumps(body).encode())
    send = rig.port.api

    def cut(command: str, *, timeout: float | None = None) -> str:
        raise FreeSwitchNotSent("not connected")

    rig.port.api = cut  # type: ignore[method-assign]
    with pytest.raises(FreeSwitchNotSent):  # the intake leaves the command in the queue
        rig.media.handlers()["record"](cmd, Delivered(None, None))
    rig.port.api = send  # type: ignore[method-assign]
    reply = rig.media.handlers()["record"](cmd, Delivered(None, None))  # delivered again
    assert reply["ok"], reply
    started = [line for line in rig.port.sent if line.startswith(f"api uuid_record {call_id} start")]
    assert len(started) == 1 and reply["result"]["recording_id"] in started[0]
