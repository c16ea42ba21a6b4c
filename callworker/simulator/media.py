"""Media API commands and their events, shaped as FreeSWITCH 1.10.12 sends them.

* ``uuid_broadcast <uuid> <path> [aleg|bleg|both]``: ``+OK Message sent``; the parked
  leg runs ``playback``: CHANNEL_EXECUTE, PLAYBACK_START, PLAYBACK_STOP,
  CHANNEL_EXECUTE_COMPLETE, COMMAND. The path's
  ``{name=value,...}`` prefix are file-handle parameters; PLAYBACK_START and, when it
  ends (or the call hangs up), PLAYBACK_STOP carry ``Playback-File-Path`` (the path as
  given), ``Playback-Status`` (STOP: ``done``, also when the call hangs up) and the
  parameters as headers. ``Playback-File-Type: tone_stream`` only for a path that
  starts with ``tone_stream:`` (a ``{...}`` prefix hides it, as on the real switch).
  A tone lasts ``loops`` cycles of on + off; a WAV file as long as it is where the
  simulator can read it, else a second.
* ``uuid_send_dtmf <uuid> <digits>``: ``+OK <uuid> sent DTMF <digits>.``; no event on
  the sending leg. What was sent is kept for tests (``sent_dtmf``).
* ``uuid_record <uuid> start|stop <path>``: ``+OK Success``; RECORD_START and
  MEDIA_BUG_START, and on stop
  or at hangup (after CHANNEL_HANGUP, before CHANNEL_HANGUP_COMPLETE) RECORD_STOP with
  ``Record-File-Path`` and the variables ``record_samples``, ``record_seconds``,
  ``record_ms``, then MEDIA_BUG_STOP. The simulator writes a WAV of silence (8 kHz, 16-bit mono) of that
  length where it can create the file.
* ``far_end_dtmf``: the far end keys in digits (DTMF events, 2080 samples of 8 kHz each).
"""

from __future__ import annotations

import os
import re
import uuid
import wave
from collections.abc import Callable

import gevent

from callworker.simulator.channel import Channel
from callworker.simulator.switch import Switch

__all__ = ["SimMedia", "far_end_dtmf"]

_LOCATE = "-ERR Cannot locate session!\n"
_KEPT_DTMF = 10_000  # calls whose sent digits are kept for tests
_TONE = re.compile(r"tone_stream://%\(([0-9]+),([0-9]+),[0-9]+\)(?:;loops=(-?[0-9]+))?")
_PARAMS = re.compile(r"\A\{([^{}]*)\}")
# What the real switch reports of a digit sent with send_dtmf (its default 2000 samples of
# 8 kHz, rounded up to whole RTP packets).
_DTMF_SAMPLES = 2080


def far_end_dtmf(sw: Switch, ch: Channel, digits: str, gap_s: float = 0.1) -> None:
    """The far end sends ``digits``: one DTMF event each on this leg, in order."""
    for digit in digits:
        if ch.wait(gap_s):
            return
        sw.emit(ch, "DTMF", bottom=[("DTMF-Digit", digit), ("DTMF-Duration", str(_DTMF_SAMPLES)),
                                    ("DTMF-Source", "RTP")])


def _split_params(path: str) -> tuple[list[tuple[str, str]], str]:
    found = _PARAMS.match(path)
    if found is None:
        return [], path
    pairs = [tuple(item.split("=", 1)) for item in found.group(1).split(",") if "=" in item]
    return [(k, v) for k, v in pairs], path[found.end():]  # type: ignore[misc]


def _seconds(source: str) -> float:
    tone = _TONE.match(source)
    if tone is not None:
        loops = max(1, int(tone.group(3) or 1))
        return loops * (int(tone.group(1)) + int(tone.group(2))) / 1000
    files = source.removeprefix("file_string://").split("!")
    return sum(_wav_seconds(path) for path in files)


def _wav_seconds(path: str) -> float:
    try:
        with wave.open(path, "rb") as wav:
            return wav.getnframes() / wav.getframerate()
    except (OSError, wave.Error, EOFError):
        return 1.0


class SimMedia:
    """The media commands of one simulated switch."""

    def __init__(self, sw: Switch) -> None:
        self.sw = sw
        self.sent_dtmf: dict[str, str] = {}
        self._playing: dict[str, list[Callable[[], None]]] = {}
        self._recording: dict[str, dict[str, int]] = {}  # uuid -> path -> started (us)
        sw.hangup_hooks.append(self._hung_up)

    def commands(self) -> dict[str, Callable[[str], str]]:
        return {"uuid_broadcast": self.uuid_broadcast, "uuid_send_dtmf": self.uuid_send_dtmf,
                "uuid_record": self.uuid_record}

    # ---------------------------------------------------------------- play

    def uuid_broadcast(self, args: str) -> str:
        words = args.split()
        if len(words) < 2:
            return "-USAGE: <uuid> <path> [aleg|bleg|both]\n"
        ch = self.sw.find(words[0])
        if ch is None or ch.gone:
            return "-ERR invalid uuid\n"
        path = words[1]
        params, source = _split_params(path)
        bottom = [("Playback-File-Type", "tone_stream")] if path.startswith("tone_stream:") else []
        bottom.append(("Playback-File-Path", path))
        app = [("Application", "playback"), ("Application-Data", path), ("Application-UUID", str(uuid.uuid4()))]
        stopped: list[bool] = []

        def stop(hung_up: bool) -> None:
            if not stopped:
                stopped.append(True)
                self.sw.emit(ch, "PLAYBACK_STOP", bottom=[*bottom, ("Playback-Status", "done"), *params])
                self.sw.emit(ch, "CHANNEL_EXECUTE_COMPLETE",
                             bottom=[*app[:2], ("Application-Response", "FILE PLAYED"), app[2]])
                if not hung_up:  # the park loop's note of the message it ran
                    self.sw.emit(ch, "COMMAND")

        def play() -> None:
            self.sw.emit(ch, "CHANNEL_EXECUTE", bottom=app)
            self.sw.emit(ch, "PLAYBACK_START", bottom=[*bottom, *params])
            if not ch.wait(_seconds(source)):
                stop(False)

        self._playing.setdefault(ch.uuid, []).append(lambda: stop(True))
        gevent.spawn(play)
        return "+OK Message sent\n"

    # ---------------------------------------------------------------- DTMF

    def uuid_send_dtmf(self, args: str) -> str:
        words = args.split()
        if len(words) < 2:
            return "-USAGE: <uuid> <dtmf_data>\n"
        ch = self.sw.find(words[0])
        if ch is None:
            return _LOCATE
        digits = words[1].split("@", 1)[0]
        self.sent_dtmf[ch.uuid] = self.sent_dtmf.get(ch.uuid, "") + digits
        while len(self.sent_dtmf) > _KEPT_DTMF:  # the oldest calls' digits go first
            del self.sent_dtmf[next(iter(self.sent_dtmf))]
        return f"+OK {ch.uuid} sent DTMF {words[1]}.\n"

    # -------------------------------------------------------------- record

    def uuid_record(self, args: str) -> str:
        words = args.split()
        if len(words) < 3:
            return "-USAGE: <uuid> [start|stop|mask|unmask|pause|resume] <path> [<limit>] [<recording_vars>]\n"
        ch = self.sw.find(words[0])
        if ch is None:
            return _LOCATE
        action, path = words[1].lower(), words[2]
        running = self._recording.setdefault(ch.uuid, {})
        if action == "start":
            if ch.gone or not ch.media:
                return "-ERR Cannot record session!\n"
            running[path] = self.sw.now_us()
            gevent.spawn(self._started, ch, path)
            return "+OK Success\n"
        if action == "stop":
            if path not in running:
                return "-ERR Cannot stop record session!\n"
            self._stop_recording(ch, path, running.pop(path))
            return "+OK Success\n"
        return "-USAGE: <uuid> [start|stop|mask|unmask|pause|resume] <path> [<limit>] [<recording_vars>]\n"

    def _started(self, ch: Channel, path: str) -> None:
        self.sw.emit(ch, "RECORD_START", bottom=[("Record-File-Path", path)])
        self._bug(ch, "MEDIA_BUG_START")

    def _bug(self, ch: Channel, name: str) -> None:
        self.sw.emit(ch, name, bottom=[("Media-Bug-Function", "session_record"), ("Media-Bug-Target", ch.uuid)])

    def _stop_recording(self, ch: Channel, path: str, started_us: int) -> None:
        ms = max(0, (self.sw.now_us() - started_us) // 1000)
        samples = ms * 8
        _write_silence(path, samples)
        self.sw.set_vars(ch, [("record_samples", str(samples)), ("record_seconds", str(ms // 1000)),
                              ("record_ms", str(ms))])
        self.sw.emit(ch, "RECORD_STOP", bottom=[("Record-File-Path", path)])
        self._bug(ch, "MEDIA_BUG_STOP")

    # -------------------------------------------------------------- hangup

    def _hung_up(self, ch: Channel) -> None:
        """What runs on a channel going down stops: playbacks end, recordings close."""
        for stop in self._playing.pop(ch.uuid, []):
            stop()
        for path, started_us in self._recording.pop(ch.uuid, {}).items():
            self._stop_recording(ch, path, started_us)


def _write_silence(path: str, samples: int) -> None:
    """A WAV of ``samples`` of silence, where the simulator may create it (else nothing)."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with wave.open(path, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(8000)
            out.writeframes(b"\0\0" * samples)
    except OSError:
        pass
