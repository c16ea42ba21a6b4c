"""FreeSWITCH's media events to contract events: playbacks, recordings, DTMF (docs/media.md).

What the real switch (1.10.12) sends, and what is read of it:

* PLAYBACK_START / PLAYBACK_STOP: ``Playback-File-Path``, ``Playback-Status``
  (``done`` or ``break``, on STOP) and the file-handle parameters of the playback as
  headers: the worker plays ``{callworker_playback_id=<id>}<source>``, so both carry
  ``callworker_playback_id``. A playback without it (the dialplan's own) is ignored.
* RECORD_START / RECORD_STOP: ``Record-File-Path`` (the path ``uuid_record`` was
  given, whose file name is the recording id) and on STOP the channel variables
  ``variable_record_ms`` and ``variable_record_samples``. The size is the file's, read
  where the recordings directory is visible here, else that of the WAV FreeSWITCH
  writes for those samples (16-bit mono: a 44-byte header and 2 bytes a sample).
* DTMF: ``DTMF-Digit`` and ``DTMF-Duration`` in samples of 8 kHz (FreeSWITCH's unit
  for DTMF whatever the codec), on the leg that received the digit.

A call that ends while a playback or recording runs has it reported (finished,
stopped) in the batch that ends it, before its terminal event (``on_end``); what
FreeSWITCH says of it afterwards finds the call gone and is ignored, so each is
reported exactly once. The CDR lists the call's recording ids.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from callworker.calls.cdr import epoch_us
from callworker.calls.journal import Journal, Unit
from callworker.calls.media import MediaState, Recording, media_data
from callworker.calls.record import CallRecord
from callworker.calls.states import TERMINAL
from callworker.contract import utcnow
from callworker.esl.codec import Event

__all__ = ["MEDIA_EVENTS", "PLAYBACK_ID_HEADER", "MediaEvents", "wav_size"]

log = logging.getLogger("callworker.media")

MEDIA_EVENTS = ("PLAYBACK_START", "PLAYBACK_STOP", "RECORD_START", "RECORD_STOP", "DTMF")
PLAYBACK_ID_HEADER = "callworker_playback_id"
_UUID = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_RECORDING_FILE = re.compile(r"/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.wav\Z")
_DIGIT = re.compile(r"\A[0-9*#A-Da-d]\Z")
_WAV_HEADER = 44
_BYTES_PER_MS = 16  # 8 kHz, 16-bit mono: what FreeSWITCH writes of a narrowband call


def wav_size(path: str, samples: int | None = None, duration_ms: int | None = None) -> int | None:
    """The recording's size: the file's where it is visible here, else estimated."""
    try:
        return os.path.getsize(path)
    except OSError:
        pass
    if samples is not None:
        return _WAV_HEADER + 2 * samples
    if duration_ms is not None:
        return _WAV_HEADER + _BYTES_PER_MS * duration_ms
    return None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _ms_between(start: datetime | None, end: datetime) -> int | None:
    return None if start is None else max(0, int((end - start).total_seconds() * 1000))


class MediaEvents:
    """The pump's handler of MEDIA_EVENTS, and the journal's ender of calls with media."""

    def __init__(self, journal: Journal, state: MediaState) -> None:
        self._journal = journal
        self._state = state
        self.published = 0

    def handle(self, event: Event) -> None:
        call_id = event.get("Unique-ID")
        if not self._journal.knows(call_id):
            return
        assert call_id is not None
        occurred_at = epoch_us(event.get("Event-Date-Timestamp")) or utcnow()
        name = event.name
        if name in ("PLAYBACK_START", "PLAYBACK_STOP"):
            playback_id = event.get(PLAYBACK_ID_HEADER) or ""
            if _UUID.match(playback_id):
                self._submit(call_id, lambda unit, record: self._playback(
                    unit, record, playback_id, name == "PLAYBACK_START", occurred_at))
        elif name in ("RECORD_START", "RECORD_STOP"):
            path = event.get("Record-File-Path") or ""
            found = _RECORDING_FILE.search(path)
            if found is None:
                return
            if name == "RECORD_START":
                self._submit(call_id, lambda unit, record: self._recording_started(
                    unit, record, found.group(1), occurred_at))
            else:
                samples = _int(event.get("variable_record_samples"))
                duration_ms = _int(event.get("variable_record_ms"))
                size = wav_size(path, samples, duration_ms)  # file I/O here, not in the journal
                self._submit(call_id, lambda unit, record: self._recording_stopped(
                    unit, record, found.group(1), occurred_at, duration_ms, size))
        elif name == "DTMF":
            digit = event.get("DTMF-Digit") or ""
            if _DIGIT.match(digit):
                samples = _int(event.get("DTMF-Duration"))
                data = {"digit": digit.upper(), "duration_ms": None if samples is None else samples // 8}
                self._submit(call_id, lambda unit, record: self._emit(
                    unit, record, "call.dtmf", occurred_at, data))

    def _submit(self, call_id: str, action: Callable[[Unit, CallRecord], None]) -> None:
        def op(unit: Unit) -> None:
            record = unit.call(call_id)
            if record is not None and record.status not in TERMINAL:
                action(unit, record)

        self._journal.submit(op)

    def _emit(self, unit: Unit, record: CallRecord, event_type: str, occurred_at: datetime,
              extra: dict[str, Any]) -> None:
        unit.emit(record, event_type, occurred_at, media_data(record, unit, occurred_at, **extra))
        self.published += 1

    # ------------------------------------------------------------ playbacks

    def _playback(self, unit: Unit, record: CallRecord, playback_id: str, started: bool,
                  occurred_at: datetime) -> None:
        playbacks = self._state.of(record.call_id).playbacks
        if started and playback_id not in playbacks:
            playbacks.add(playback_id)
            self._emit(unit, record, "call.playback_started", occurred_at, {"playback_id": playback_id})
        elif not started and playback_id in playbacks:
            playbacks.discard(playback_id)
            self._emit(unit, record, "call.playback_finished", occurred_at, {"playback_id": playback_id})

    # ----------------------------------------------------------- recordings

    def _recording_started(self, unit: Unit, record: CallRecord, recording_id: str, occurred_at: datetime) -> None:
        recording = self._state.recording(record.call_id, recording_id)
        if recording is None or recording.status != "starting":
            return  # not the worker's, or told already
        self._started(unit, record, recording, occurred_at)

    def _started(self, unit: Unit, record: CallRecord, recording: Recording, occurred_at: datetime) -> None:
        recording.status, recording.started_at = "recording", occurred_at
        self._state.save(unit, recording)
        self._emit(unit, record, "call.recording_started", occurred_at,
                   {"recording_id": recording.recording_id, "path": recording.path})

    def _recording_stopped(
        self, unit: Unit, record: CallRecord, recording_id: str, occurred_at: datetime,
        duration_ms: int | None, size: int | None,
    ) -> None:
        recording = self._state.recording(record.call_id, recording_id)
        if recording is None or recording.status not in ("starting", "recording"):
            return
        self._stopped(unit, record, recording, occurred_at, duration_ms, size)

    def _stopped(
        self, unit: Unit, record: CallRecord, recording: Recording, occurred_at: datetime,
        duration_ms: int | None, size: int | None,
    ) -> None:
        if recording.status == "starting":  # its start went unheard: told now, in its place
            self._started(unit, record, recording, occurred_at)
        recording.status, recording.stopped_at = "stopped", occurred_at
        recording.duration_ms = duration_ms if duration_ms is not None else _ms_between(
            recording.started_at, occurred_at)
        recording.size_bytes = size
        self._state.save(unit, recording)
        self._emit(unit, record, "call.recording_stopped", occurred_at, {
            "recording_id": recording.recording_id, "path": recording.path,
            "duration_ms": recording.duration_ms, "size_bytes": recording.size_bytes,
        })

    # ---------------------------------------------------------------- ends

    def on_end(self, unit: Unit, record: CallRecord, cdr: dict[str, Any]) -> None:
        """A call ends: report what still runs on it, list its recordings in the CDR, forget it."""
        media = self._state.calls.pop(record.call_id, None)
        if media is None:
            return
        ended_at = cdr.get("end_stamp") or unit.now
        for playback_id in sorted(media.playbacks):
            self._emit(unit, record, "call.playback_finished", ended_at, {"playback_id": playback_id})
        for recording in media.recordings.values():
            if recording.status in ("starting", "recording"):
                duration_ms = _ms_between(recording.started_at, ended_at) or 0
                self._stopped(unit, record, recording, ended_at, duration_ms,
                              wav_size(recording.path, duration_ms=duration_ms))
        cdr["recordings"] = [r.recording_id for r in media.recordings.values() if r.status == "stopped"]
