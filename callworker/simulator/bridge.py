"""Connecting calls, as FreeSWITCH 1.10.12 does it: ``uuid_bridge``, ``uuid_transfer``, and
``execute_on_answer=sched_hangup +N <cause>`` (a call's time limit).

``uuid_bridge A B`` joins two live legs: CHANNEL_BRIDGE on A only, naming both legs
(``Bridge-A-Unique-ID``, ``Bridge-B-Unique-ID``, ``Other-Leg-Unique-ID``; capture 22);
from then on each leg's events name the other (``Other-Leg-Unique-ID``). When either leg
starts hanging up, A reports CHANNEL_UNBRIDGE (with its own cause if it is that leg) and
the other leg is hung up with NORMAL_CLEARING, as the real switch does. ``uuid_transfer`` answers
as the real one does; the simulator's dialplan parks every call, so the leg stays up.
"""

from __future__ import annotations

from collections.abc import Callable

from callworker.simulator.causes import cause_from_text
from callworker.simulator.channel import Channel
from callworker.simulator.switch import Switch

__all__ = ["bridge_commands", "schedule_on_answer"]

_BRIDGE_USAGE = "-USAGE: <uuid> <other_uuid>\n"
_TRANSFER_USAGE = "-USAGE: <uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]\n"
_NO_CHANNEL = "-ERR No such channel!\n"


def bridge_commands(sw: Switch) -> dict[str, Callable[[str], str]]:
    """The API commands of this module, for ``ApiRunner``."""
    return {
        "uuid_bridge": lambda args: uuid_bridge(sw, args),
        "uuid_transfer": lambda args: uuid_transfer(sw, args),
    }


def _live(sw: Switch, uuid: str) -> Channel | None:
    ch = sw.find(uuid)
    return None if ch is None or ch.gone or ch.killed.is_set() else ch


def uuid_bridge(sw: Switch, args: str) -> str:
    words = args.split()
    if len(words) != 2:
        return _BRIDGE_USAGE
    a, b = _live(sw, words[0]), _live(sw, words[1])
    if a is None or b is None or a is b:
        return "-ERR Invalid uuid\n"
    a.other_leg, b.other_leg = b.uuid, a.uuid
    headers = [("Bridge-A-Unique-ID", a.uuid), ("Bridge-B-Unique-ID", b.uuid)]
    sw.emit(a, "CHANNEL_BRIDGE", top=headers)
    done = False

    def unbridge(other: Channel) -> None:
        """The first leg to hang up ends the bridge: UNBRIDGE on A, and the other leg ends."""
        nonlocal done
        if done:
            return
        done = True
        if not a.ended.is_set():
            sw.emit(a, "CHANNEL_UNBRIDGE", top=headers)
        other.request_hangup("NORMAL_CLEARING")

    a.hangup_hooks.append(lambda: unbridge(b))
    b.hangup_hooks.append(lambda: unbridge(a))
    return f"+OK {b.uuid}\n"


def uuid_transfer(sw: Switch, args: str) -> str:
    words = args.split()
    if words[1:2] and words[1] in ("-bleg", "-both"):
        words.pop(1)
    if len(words) < 2:
        return _TRANSFER_USAGE
    ch = _live(sw, words[0])
    if ch is None:
        return _NO_CHANNEL
    ch.context = words[3] if len(words) > 3 else "default"
    return "+OK\n"


def schedule_on_answer(sw: Switch, ch: Channel) -> None:
    """``execute_on_answer=sched_hangup +N <cause>``: the answered leg ends N s later."""
    words = (ch.variables.get("execute_on_answer") or "").split()
    if len(words) < 2 or words[0] != "sched_hangup" or not words[1].startswith("+"):
        return
    try:
        seconds = int(words[1][1:])
    except ValueError:
        return
    cause = cause_from_text(words[2] if len(words) > 2 else None, "ALLOTTED_TIMEOUT")

    def hang_up() -> None:
        if not ch.wait(seconds):
            ch.request_hangup(cause)

    sw.spawn_call(hang_up)
