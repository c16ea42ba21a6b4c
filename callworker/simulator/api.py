"""API commands (``api``/``bgapi``) with FreeSWITCH's exact reply texts.

Every command completes through a ``done(text)`` callback: most call it at once,
``originate`` calls it from the call's greenlet when the leg answers or fails.
That one shape serves ``api`` (wait for the text) and ``bgapi`` (turn the text
into a BACKGROUND_JOB) alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gevent

from callworker.simulator.bridge import bridge_commands
from callworker.simulator.causes import cause_from_text
from callworker.simulator.channel import Channel
from callworker.simulator.events import Block
from callworker.simulator.legs import HELD_BY_US, hold, unhold
from callworker.simulator.media import SimMedia
from callworker.simulator.originate import originate
from callworker.simulator.reports import show, status_text, version_text
from callworker.simulator.switch import Switch

__all__ = ["ApiRunner", "NO_CHANNEL"]

Done = Callable[[str], None]
NO_CHANNEL = "-ERR No such channel!\n"
_HOLD_OK = "+OK Success\n"
_HOLD_FAILED = "-ERR Operation failed\n"
_AUDIO_USAGE = "-USAGE: <uuid> [start [read|write] [mute|level <level>]|stop]\n"


class ApiRunner:
    """Runs one API command against the switch and reports its output."""

    def __init__(self, switch: Switch) -> None:
        self.sw = switch
        self._refusals: list[list[Any]] = []  # [line prefix, reply, times left]
        self._simple: dict[str, Callable[[str], str]] = {
            "status": lambda _args: status_text(self.sw),
            "version": lambda _args: version_text(),
            "hostname": lambda _args: self.sw.hostname,
            "show": lambda args: show(self.sw, args),
            "uuid_kill": self.uuid_kill,
            "uuid_hold": self.uuid_hold,
            "uuid_audio": self.uuid_audio,
            "uuid_exists": lambda args: "true" if self.sw.find(args.strip()) else "false",
            "uuid_getvar": self.uuid_getvar,
            "uuid_setvar": self.uuid_setvar,
            "hupall": self.hupall,
        }
        self._simple.update(bridge_commands(self.sw))
        self.media = SimMedia(switch)
        self._simple.update(self.media.commands())

    def refuse(self, line: str, reply: str, times: int) -> None:
        """The next ``times`` commands starting with ``line`` answer ``reply`` instead."""
        self._refusals.append([line, reply, times])

    def _refusal(self, command: str, args: str) -> str | None:
        line = f"{command} {args}".rstrip()
        for refusal in self._refusals:
            if line.startswith(refusal[0]) and refusal[2] > 0:
                refusal[2] -= 1
                return str(refusal[1])
        return None

    def run(self, command: str, args: str, done: Done) -> None:
        """Run the command; ``done`` gets its output. The API event is fired once it has
        run, just before its output is reported, as switch_api_execute does."""
        pairs = [("API-Command", command), ("API-Command-Argument", args)]

        def finish(text: str) -> None:
            self.sw.fire("API", lambda: [Block(pairs)])
            done(text)

        refused = self._refusal(command, args)
        if refused is not None:
            finish(refused)
            return
        if command == "originate":
            originate(self.sw, args, finish)
            return
        handler = self._simple.get(command)
        finish(handler(args) if handler else f"-ERR {command} Command not found!\n")

    def background_job(self, job_uuid: str, command: str, args: str) -> Done:
        """The ``done`` of a bgapi job: fire BACKGROUND_JOB with the output as body."""
        pairs = [("Job-UUID", job_uuid), ("Job-Command", command), ("Job-Command-Arg", args)]

        def done(text: str) -> None:
            self.sw.fire("BACKGROUND_JOB", lambda: [Block(pairs)], body=text or "-ERR no reply\n")

        return done

    # ------------------------------------------------------------ channel commands

    def uuid_kill(self, args: str) -> str:
        words = args.split()
        if not words:
            return "-USAGE: <uuid> [cause]\n"
        ch = self.sw.find(words[0])
        if ch is None:
            return NO_CHANNEL
        ch.request_hangup(cause_from_text(words[1] if len(words) > 1 else None))
        return "+OK\n"

    def hupall(self, args: str) -> str:
        words = args.split()
        cause = cause_from_text(words[0], "NORMAL_CLEARING") if words else "MANAGER_REQUEST"
        var = words[1] if len(words) > 1 else None
        value = words[2] if len(words) > 2 else ""
        for ch in list(self.sw.channels.values()):
            if var is None or ch.variables.get(var) == value:
                ch.request_hangup(cause)
        if var is None:
            return f"+OK hangup all channels with cause {cause}\n"
        return f"+OK hangup all channels matching [{var}]=[{value}] with cause: {cause}\n"

    def uuid_hold(self, args: str) -> str:
        words = args.split()
        mode = "on"
        if words and words[0].lower() in ("off", "toggle"):
            mode = words.pop(0).lower()
        if not words:
            return "-USAGE: [off|toggle] <uuid> [<display>]\n"
        ch = self.sw.find(words[0])
        if ch is None:
            return _HOLD_OK  # switch_ivr_hold_uuid starts from SUCCESS and finds nothing to do
        if mode == "toggle":
            mode = "off" if ch.held else "on"
        if ch.gone or (mode == "on") == ch.held:
            return _HOLD_FAILED
        if mode == "on":
            hold(self.sw, ch, HELD_BY_US)
        else:
            unhold(self.sw, ch, HELD_BY_US)
        return _HOLD_OK

    def uuid_audio(self, args: str) -> str:
        words = args.split()
        if len(words) < 2:
            return _AUDIO_USAGE
        ch = self.sw.find(words[0])
        if ch is None:
            return NO_CHANNEL
        action = words[1].lower()
        if action == "stop":
            if ch.media_bug:
                ch.media_bug = False
                ch.audio = {"read": {"mute": 0, "level": 0}, "write": {"mute": 0, "level": 0}}
                self._media_bug(ch, "MEDIA_BUG_STOP")
            return "+OK\n"
        if action != "start" or len(words) < 5:
            return _AUDIO_USAGE
        direction, op = words[2].lower(), words[3].lower()
        if direction not in ("read", "write") or op not in ("mute", "level"):
            return _AUDIO_USAGE
        try:
            value = int(words[4])
        except ValueError:
            return _AUDIO_USAGE
        if not ch.media_bug:
            ch.media_bug = True
            self._media_bug(ch, "MEDIA_BUG_START")
        if op == "mute":
            ch.audio[direction]["mute"] = value
        elif -4 <= value <= 4:  # a level outside -4..4 is silently ignored
            ch.audio[direction]["level"] = value
        if not any(v for way in ch.audio.values() for v in way.values()):
            # Nothing left to do: the bug removes itself on the next media frame
            # (after this reply), so unmuting with "mute 0" fires MEDIA_BUG_STOP.
            ch.media_bug = False
            gevent.spawn(self._bug_removed, ch)
        return "+OK\n"

    def _bug_removed(self, ch: Channel) -> None:
        if not ch.gone and not ch.media_bug:
            self._media_bug(ch, "MEDIA_BUG_STOP")

    def _media_bug(self, ch: Channel, name: str) -> None:
        self.sw.emit(ch, name, bottom=[("Media-Bug-Function", "audio"),
                                       ("Media-Bug-Target", ch.uuid)])

    def uuid_getvar(self, args: str) -> str:
        words = args.split()
        if len(words) < 2:
            return "-USAGE: <uuid> <var> [index]\n"
        ch = self.sw.find(words[0])
        if ch is None:
            return NO_CHANNEL
        value = ch.variables.get(words[1])
        return "_undef_" if value is None else value

    def uuid_setvar(self, args: str) -> str:
        uuid, _, rest = args.strip().partition(" ")
        name, _, value = rest.strip().partition(" ")
        if not name:
            return "-USAGE: <uuid> <var> [value]\n"
        ch = self.sw.find(uuid)
        if ch is None:
            return NO_CHANNEL
        ch.variables.set(name, value or None)  # no value unsets the variable
        return "+OK\n"
