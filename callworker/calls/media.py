"""Media on an answered call: ``play``, ``dtmf`` and ``record`` (docs/media.md).

Strategy: the commands act on FreeSWITCH with one API command each
(``uuid_broadcast``, ``uuid_send_dtmf``, ``uuid_record``); what happens next is told by
FreeSWITCH's events, which ``calls/media_events.py`` turns into contract events. What
the worker must remember between the two (which playbacks and recordings of a call are
running, every recording id for the CDR) is ``MediaState``, changed only inside
journal operations, so it moves in step with the calls.

Ids: a ``playback_id`` and a ``recording_id`` are derived from the tenant and the
``command_id`` (UUID 5), so a command delivered again after a crash names the same
playback or recording. A recording is written down (``starting``) before
``uuid_record`` is sent: a command that finds its recording written down already
sends nothing, so one command never starts a second recording. One recording runs
per call at a time; ``record start`` while one runs answers with its id.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from callworker.calls.journal import Journal, Unit
from callworker.calls.record import CallRecord
from callworker.calls.service import CallService, Delivered
from callworker.contract import (
    Command,
    ContractError,
    DtmfCommand,
    ErrorCode,
    PlayCommand,
    RecordCommand,
    call_snapshot,
    reply_error,
    reply_ok,
)
from callworker.errors import FreeSwitchNotSent
from callworker.esl import builders
from callworker.store.recordings import recordings_of_calls

__all__ = ["MEDIA_COMMANDS", "Media", "MediaState", "Recording", "media_data"]

log = logging.getLogger("callworker.media")

MEDIA_COMMANDS = ("play", "dtmf", "record")
_IDS = uuid.UUID("6f1d2c1e-8d53-4c55-9a43-0c6b5e1a7d20")  # the namespace of derived ids
RUNNING = ("starting", "recording")


def derived_id(tenant: str, command_id: str, what: str) -> str:
    return str(uuid.uuid5(_IDS, f"{tenant}/{command_id}/{what}"))


@dataclass
class Recording:
    recording_id: str
    call_id: str
    tenant: str
    node: str
    path: str
    command_id: str | None
    status: str = "starting"
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    duration_ms: int | None = None
    size_bytes: int | None = None

    def row(self, now: datetime) -> dict[str, Any]:
        return {
            "recording_id": self.recording_id, "call_id": self.call_id, "tenant": self.tenant,
            "node": self.node, "command_id": self.command_id, "path": self.path, "status": self.status,
            "started_at": self.started_at, "stopped_at": self.stopped_at, "duration_ms": self.duration_ms,
            "size_bytes": self.size_bytes, "updated_at": now,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Recording:
        return cls(**{name: row[name] for name in (
            "recording_id", "call_id", "tenant", "node", "path", "command_id", "status", "started_at",
            "stopped_at", "duration_ms", "size_bytes",
        )})


@dataclass
class CallMedia:
    """What runs on one live call: playbacks started and not finished, its recordings (all)."""

    playbacks: set[str] = field(default_factory=set)
    recordings: dict[str, Recording] = field(default_factory=dict)

    def running(self) -> Recording | None:
        return next((r for r in self.recordings.values() if r.status in RUNNING), None)


class MediaState:
    """The media of the live calls of this node; read and changed in journal operations only."""

    def __init__(self) -> None:
        self.calls: dict[str, CallMedia] = {}

    def of(self, call_id: str) -> CallMedia:
        media = self.calls.get(call_id)
        if media is None:
            media = self.calls[call_id] = CallMedia()
        return media

    def recording(self, call_id: str, recording_id: str) -> Recording | None:
        media = self.calls.get(call_id)
        return media.recordings.get(recording_id) if media else None

    def save(self, unit: Unit, recording: Recording) -> None:
        unit.batch.recordings.append(recording.row(unit.now))


def media_data(record: CallRecord, unit: Unit, occurred_at: datetime, **extra: Any) -> dict[str, Any]:
    """``data`` of a media event: the call snapshot and the event's own fields."""
    data = call_snapshot(record.row(unit.now), now=occurred_at)
    data.update(extra)
    return data


class Media:
    """The ``play``, ``dtmf`` and ``record`` commands (added to the intake's handlers)."""

    def __init__(
        self, *, journal: Journal, service: CallService, engine: Engine, node: str,
        sounds_dir: str, recordings_dir: str, state: MediaState | None = None,
    ) -> None:
        self._journal = journal
        self._service = service
        self._engine = engine
        self._node = node
        self._sounds_dir = sounds_dir
        self._recordings_dir = recordings_dir
        self.state = state or MediaState()

    def handlers(self) -> dict[str, Callable[[Any, Delivered], dict[str, Any]]]:
        return {"play": self._guarded(self.play), "dtmf": self._guarded(self.dtmf),
                "record": self._guarded(self.record)}

    def _guarded(self, handler: Callable[[Any, Delivered], dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        """Refusals for the state of things are replies (committed); bad values raise to be dead-lettered."""

        def run(command: Command, to: Delivered) -> dict[str, Any]:
            try:
                return handler(command, to)
            except ContractError as error:
                if error.dead_letter:
                    raise
                return self._service.finish(command, to, reply_error(error), call_id=getattr(command, "call_id", None))

        return run

    def owner_of(self, command: Command) -> str | None:
        """The other node that holds this media command's live call, if any."""
        if command.type not in MEDIA_COMMANDS:
            return None
        return self._service.node_holding(command)

    def load(self) -> None:
        """Take back the recordings of this node's live calls: at start, before the journal
        runs, and as a reloader, inside the journal (so it never waits for the journal)."""
        rows = recordings_of_calls(self._engine, list(self._journal.calls))
        self.state.calls.clear()
        for row in rows:
            if self._journal.knows(row["call_id"]) and row["status"] != "failed":
                recording = Recording.from_row(row)
                self.state.of(recording.call_id).recordings[recording.recording_id] = recording

    # -------------------------------------------------------------- commands

    def play(self, command: PlayCommand, to: Delivered) -> dict[str, Any]:
        record = self._service.answered_call(command, command.call_id, "played to")
        playback_id = derived_id(command.tenant, command.command_id, "play")
        if command.tone is not None:
            source = builders.tone_source(command.tone, command.loops)
        else:
            assert command.sound is not None
            self._check_sound(command, command.sound)
            source = builders.sound_source(self._sounds_dir, command.sound, command.loops)
        self._service.api(command, builders.uuid_broadcast_play(record.call_id, playback_id, source))
        result = {"call_id": record.call_id, "playback_id": playback_id}
        return self._service.finish(command, to, reply_ok(command.command_id, command.type, result),
                                    call_id=record.call_id)

    def _check_sound(self, command: Command, sound: str) -> None:
        """Where the sounds directory is visible here (FreeSWITCH on this machine), the file must be in it."""
        if os.path.isdir(self._sounds_dir) and not os.path.isfile(os.path.join(self._sounds_dir, sound)):
            raise ContractError(
                ErrorCode.VALIDATION_ERROR, "no such sound in the sounds directory",
                details={"field": "sound"}, command_id=command.command_id, command_type=command.type,
            )

    def dtmf(self, command: DtmfCommand, to: Delivered) -> dict[str, Any]:
        record = self._service.answered_call(command, command.call_id, "sent DTMF")
        self._service.api(command, builders.uuid_send_dtmf(record.call_id, command.digits))
        result = {"call_id": record.call_id}
        return self._service.finish(command, to, reply_ok(command.command_id, command.type, result),
                                    call_id=record.call_id)

    def record(self, command: RecordCommand, to: Delivered) -> dict[str, Any]:
        record = self._service.answered_call(command, command.call_id, "recorded")
        if command.action == "start":
            recording_id = self._start(command, record)
        else:
            recording_id = self._stop(command, record)
        result = {"call_id": record.call_id, "recording_id": recording_id}
        return self._service.finish(command, to, reply_ok(command.command_id, command.type, result),
                                    call_id=record.call_id)

    def _start(self, command: RecordCommand, record: CallRecord) -> str:
        recording_id = derived_id(command.tenant, command.command_id, "record")
        path = builders.recording_path(self._recordings_dir, record.tenant, record.call_id, recording_id)

        def write_down(unit: Unit) -> tuple[str, bool]:
            media = self.state.of(record.call_id)
            known = media.recordings.get(recording_id)
            if known is not None:
                return recording_id, False  # this command again: sent already
            running = media.running()
            if running is not None:
                return running.recording_id, False  # one at a time: that one
            new = Recording(recording_id, record.call_id, record.tenant, self._node, path, command.command_id)
            media.recordings[recording_id] = new
            self.state.save(unit, new)
            return recording_id, True

        answer, send = self._journal.run(write_down)
        if send:
            try:
                self._service.api(command, builders.uuid_record(record.call_id, "start", path))
            except (ContractError, FreeSwitchNotSent):
                # Refused, or never sent (the command waits for FreeSWITCH and comes back):
                # not running. Lost on the way, it may be: it stays, and is never sent again.
                self._journal.run(self._failed_op(record.call_id, recording_id))
                raise
        return answer

    def _failed_op(self, call_id: str, recording_id: str) -> Callable[[Unit], None]:
        def op(unit: Unit) -> None:
            media = self.state.calls.get(call_id)
            recording = media.recordings.pop(recording_id, None) if media else None
            if recording is not None:
                recording.status = "failed"
                self.state.save(unit, recording)

        return op

    def _stop(self, command: RecordCommand, record: CallRecord) -> str:
        running = self._journal.run(lambda unit: self.state.of(record.call_id).running())
        if running is None:
            raise ContractError(
                ErrorCode.CALL_NOT_ACTIVE, "no recording is running on the call",
                details={"call_id": record.call_id}, command_id=command.command_id, command_type=command.type,
            )
        self._service.api(command, builders.uuid_record(record.call_id, "stop", running.path))
        return running.recording_id
