"""A simulated channel: its states, times and variables."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent.event

from callworker.simulator.events import Block, encode_value

__all__ = ["Channel", "Variables", "now_us", "STATE_NUMBERS", "CALL_STATE_NUMBERS"]

STATE_NUMBERS = {
    # CS_NONE: an originated leg before its state machine runs (CHANNEL_OUTGOING).
    "CS_NONE": 13, "CS_NEW": 0, "CS_INIT": 1, "CS_ROUTING": 2, "CS_SOFT_EXECUTE": 3, "CS_EXECUTE": 4,
    "CS_EXCHANGE_MEDIA": 5, "CS_PARK": 6, "CS_CONSUME_MEDIA": 7, "CS_HIBERNATE": 8,
    "CS_RESET": 9, "CS_HANGUP": 10, "CS_REPORTING": 11, "CS_DESTROY": 12,
}
CALL_STATE_NUMBERS = {
    "DOWN": 0, "DIALING": 1, "RINGING": 2, "EARLY": 3, "ACTIVE": 4, "HELD": 5,
    "RING_WAIT": 6, "HANGUP": 7, "UNHELD": 8,
}


def now_us(step_us: int = 0) -> int:
    """Wall-clock microseconds; with ``step_us``, on FreeSWITCH's clock, which moves in steps."""
    now = time.time_ns() // 1000
    return now - now % step_us if step_us else now


class Variables:
    """Channel variables in FreeSWITCH order; each line is URL-encoded once.

    Setting a variable again moves it to the end, as FreeSWITCH's unique-header
    variable event does (compare captures 08 and 09).
    """

    __slots__ = ("_raw", "_lines", "_block")

    def __init__(self) -> None:
        self._raw: dict[str, str] = {}
        self._lines: dict[str, bytes] = {}
        self._block: Block | None = None

    def set(self, name: str, value: str | None) -> None:
        self._raw.pop(name, None)
        self._lines.pop(name, None)
        if value is not None and value != "":
            self._raw[name] = value
            self._lines[name] = f"variable_{name}: {encode_value(value)}\n".encode()
        self._block = None

    def update(self, pairs: Any) -> None:
        for name, value in pairs:
            self.set(name, value)

    def get(self, name: str) -> str | None:
        return self._raw.get(name)

    def copy(self) -> dict[str, str]:
        return dict(self._raw)

    def compact(self) -> None:
        """Keep only the raw values (an ended channel fires no more events)."""
        self._lines = {}
        self._block = None

    def block(self) -> Block:
        if self._block is None:
            if len(self._lines) != len(self._raw):
                self._lines = {k: f"variable_{k}: {encode_value(v)}\n".encode()
                               for k, v in self._raw.items()}
            pairs = [(f"variable_{name}", value) for name, value in self._raw.items()]
            self._block = Block(pairs, b"".join(self._lines.values()))
        return self._block


@dataclass(eq=False)
class Channel:
    """One leg: originated here (outbound) or arriving from a caller (inbound).

    Times are wall-clock microseconds, 0 while not reached.
    """

    uuid: str
    name: str
    number: str
    cid_name: str
    cid_num: str
    session_id: int
    hide_name: bool = False
    hide_number: bool = False
    state: str = "CS_NEW"
    state_number: int = 0
    call_state: str = "DOWN"
    answer_state: str = "ringing"
    hangup_cause: str | None = None
    media: bool = False
    created_us: int = field(default_factory=now_us)
    progress_us: int = 0
    progress_media_us: int = 0
    answered_us: int = 0
    hangup_us: int = 0
    destroyed_us: int = 0
    last_hold_us: int = 0
    hold_accum_us: int = 0
    held_since_us: int = 0
    held_by: str | None = None  # "us" (uuid_hold) or "far_end" (a re-INVITE) while held
    media_us: int = 0  # when media began to flow (early media or the answer)
    app: str = ""
    app_data: str = ""
    app_uuid: str = ""
    app_running: bool = False
    parked: bool = False
    media_bug: bool = False
    audio: dict[str, dict[str, int]] = field(
        default_factory=lambda: {"read": {"mute": 0, "level": 0}, "write": {"mute": 0, "level": 0}}
    )
    variables: Variables = field(default_factory=Variables)
    cache: dict[str, Block] = field(default_factory=dict)
    kill_cause: str | None = None
    kill_remote: bool = False
    killed: gevent.event.Event = field(default_factory=gevent.event.Event)
    direction: str = "outbound"
    context: str = "default"
    # The far end has answered the INVITE (180, 183 or 200): the callee ID is its number.
    responded: bool = False
    # The originate succeeded and caller and callee ID were swapped (CALL_UPDATE).
    flipped: bool = False
    # What the originate asked for: ``ignore_early_media=true`` waits for the answer.
    ignore_early_media: bool = False
    # Set once the channel is destroyed (its last event fired).
    ended: gevent.event.Event = field(default_factory=gevent.event.Event)
    # The leg this one is (or was last) bridged to: its events name it (Other-Leg-Unique-ID).
    other_leg: str | None = None
    # Run once the leg starts hanging up (after CHANNEL_HANGUP): what a bridge does then.
    hangup_hooks: list[Callable[[], None]] = field(default_factory=list)

    def set_state(self, state: str) -> None:
        self.state = state
        self.state_number = STATE_NUMBERS[state]

    @property
    def answered(self) -> bool:
        return self.answered_us != 0

    @property
    def held(self) -> bool:
        return self.held_since_us != 0

    @property
    def gone(self) -> bool:
        return self.hangup_cause is not None

    def request_hangup(self, cause: str, *, remote: bool = False) -> bool:
        """Ask the call's greenlet to hang up; False if a hangup is already under way."""
        if self.gone or self.killed.is_set():
            return False
        self.kill_cause = cause
        self.kill_remote = remote
        self.killed.set()
        return True

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True as soon as a hangup is requested."""
        if self.killed.is_set():
            return True
        return bool(self.killed.wait(max(seconds, 0.0)))
